"""Hypothesis profiles for the property tests (tests/test_properties_*.py, tests/test_mutants.py).

* ``ci`` (default): bounded examples, derandomized (the same examples on every run, so CI cannot flake),
  no deadline (CPU timings on a shared 2-core runner vary too much for per-example deadlines).
* ``thorough``: ten times the examples, fresh random examples on every run.

Select with the environment variable ``HYPOTHESIS_PROFILE`` (``ci`` or ``thorough``). Failing examples
are kept in the example database under ``.hypothesis/`` (git-ignored) and replayed first next time.

The repository's root is importable whatever the working directory: the tests train on the docs' example envs
(``examples/envs.py``, ids ``examples.envs:Name``).

Two tests at a time: ``scripts/test.sh`` runs the suite on pytest-xdist's workers (``-n 2``). A test marked
``alone`` runs with no other test beside it (:class:`_Room`): those start processes of their own that wait on each
other (torch.distributed ranks), which a test on the other core would stall (a 2-rank test took ~5x as long beside
another test than by itself on this 2-core machine, 2026-12-04).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
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


class _Room:
    """A lock shared by the xdist workers of one test run, that prefers the ``alone`` tests: an ordinary test holds
    the room shared, an ``alone`` one exclusively; one that waits for the room exclusively holds the gate, so that no
    ordinary test enters meanwhile (otherwise the workers' next tests could keep it out for the whole run)."""

    def __init__(self, run_id: str):
        base = Path(tempfile.gettempdir()) / f"ppo-pipeline-tests-{run_id}"
        base.mkdir(exist_ok=True)
        self.gate = (base / "gate").open("a")
        self.room = (base / "room").open("a")

    @contextlib.contextmanager
    def held(self, alone: bool) -> Iterator[None]:
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(self.gate, fcntl.LOCK_UN)


_ROOM: _Room | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _ROOM
    worker = getattr(config, "workerinput", None)  # set on an xdist worker: the run's id is the workers' common name
    if worker is not None:
        _ROOM = _Room(worker["testrunuid"])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    if _ROOM is None:
        yield
        return
    with _ROOM.held(alone=item.get_closest_marker("alone") is not None):
        yield
