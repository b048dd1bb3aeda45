"""Each recipe as a new user runs it: no arguments but ``--run-dir``, its own defaults (the paper's
full budgets). It starts training; Ctrl-C after the first update stops it with exit code 130, one line
on stderr, and a checkpoint; ``--resume`` continues it (Ctrl-C'd again after its next update)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ppo_pipeline import rundir
from ppo_pipeline.run import checkpoint

pytestmark = pytest.mark.slow   # minutes: the full suite's tier (README: Tests)

ROOT = Path(__file__).resolve().parents[1]
TQDM_BAR = re.compile(r"\d+%\|")     # the progress bar's lines (defaults: progress on)


def _ctrl_c_after(argv: list[str], run: Path, rows: int, timeout: float = 420) -> subprocess.CompletedProcess:
    """Start ``recipes/...`` in its own process group; once ``run``'s metrics.csv has ``rows`` rows,
    send SIGINT to the whole group (what a terminal's Ctrl-C does) and wait for the exit."""
    p = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True)
    end = time.time() + timeout
    while time.time() < end and p.poll() is None:
        metrics = run / rundir.METRICS
        if metrics.is_file() and len(metrics.read_text().splitlines()) - 1 >= rows:
            break
        time.sleep(0.2)
    assert p.poll() is None, f"the recipe exited early: {p.communicate()[1][-2000:]}"
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=300)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


@pytest.mark.parametrize("recipe, name", [("classic_control.py", "CartPole-v1__clip__s0"),
                                          ("mujoco.py", "Hopper-v5__clip__s0"),
                                          ("atari.py", "ALE-Pong-v5__clip__s0"),
                                          ("humanoid.py", "HumanoidBulletEnv-v0__clip__s0")])
def test_recipe_defaults_start_stop_and_resume(tmp_path, recipe, name):
    run = tmp_path / name
    p = _ctrl_c_after([str(ROOT / "recipes" / recipe), "--run-dir", str(tmp_path)], run, rows=1)
    err = [line for line in p.stderr.splitlines() if line.strip() and not TQDM_BAR.search(line)]
    assert p.returncode == 130, p.stderr[-3000:]
    assert len(err) == 1 and err[0].startswith("interrupted (Ctrl-C)") and f"--resume {run}" in err[0], p.stderr[-3000:]
    first = checkpoint.latest(run)
    assert first is not None and checkpoint.load(first)["update"] >= 1
    done = len(rundir.read_rows(run / rundir.METRICS))

    p = _ctrl_c_after([str(ROOT / "recipes" / recipe), "--resume", str(run)], run, rows=done + 1)
    assert p.returncode == 130, p.stderr[-3000:]
    assert p.stdout.startswith("resuming ")
    updates = [int(r["update"]) for r in rundir.read_rows(run / rundir.METRICS)]
    assert updates == list(range(1, len(updates) + 1)) and len(updates) > done     # continued, no duplicates
    assert checkpoint.load(checkpoint.latest(run))["update"] == updates[-1]
