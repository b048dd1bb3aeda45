"""The README's "Your own loop" snippet (the stages composed by hand in at most 30 lines) runs exactly
as printed there, and learns."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow   # minutes: the full suite's tier (README: Tests)

ROOT = Path(__file__).resolve().parents[1]


def readme_loop() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- user-loop -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md has no <!-- user-loop --> python block"
    return match.group(1)


def test_readme_loop_runs_as_printed(tmp_path):
    code = readme_loop()
    assert len(code.strip().splitlines()) <= 30
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=tmp_path,
                       env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert p.returncode == 0, p.stderr[-3000:]
    match = re.search(r"(\d+) steps, mean return of the last 100 episodes: ([\d.]+)", p.stdout)
    assert match, p.stdout
    assert int(match.group(1)) >= 30_000 and float(match.group(2)) >= 100.0   # random play: ~22
