"""Hypothesis profiles for the property tests (tests/test_properties_*.py, tests/test_mutants.py).

* ``ci`` (default): bounded examples, derandomized (the same examples on every run, so CI cannot flake),
  no deadline (CPU timings on a shared 2-core runner vary too much for per-example deadlines).
* ``thorough``: ten times the examples, fresh random examples on every run.

Select with the environment variable ``HYPOTHESIS_PROFILE`` (``ci`` or ``thorough``). Failing examples
are kept in the example database under ``.hypothesis/`` (git-ignored) and replayed first next time.

The repository's root is importable whatever the working directory: the tests train on the docs' example envs
(``examples/envs.py``, ids ``examples.envs:Name``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

ROOT = str(Path(__file__).resolve().parents[1])
if ROOT not in sys.path:
    sys.path.append(ROOT)

CI_EXAMPLES = 20

_common = dict(
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, **_common)
settings.register_profile("thorough", max_examples=10 * CI_EXAMPLES, **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
