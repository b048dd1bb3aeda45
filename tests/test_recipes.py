"""Each recipe as a new user runs it: no arguments but ``--run-dir``, its own defaults (the paper's
full budgets). It starts training; Ctrl-C during the first update stops it after that update with exit
code 130, one line on stderr, and a checkpoint; ``--resume`` continues it (Ctrl-C'd again during its next
update)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ppo_pipeline import rundir
from ppo_pipeline.run import checkpoint

pytestmark = pytest.mark.slow   # minutes: the full suite's tier (README: Tests)

ROOT = Path(__file__).resolve().parents[1]
TQDM_BAR = re.compile(r"\d+%\|")     # the progress bar's lines (defaults: progress on)


def _ctrl_c_in_first_update(argv: list[str], timeout: float = 420) -> subprocess.CompletedProcess:
    """Start ``recipes/...`` in its own process group; once its progress bar is on stderr (the bar is drawn
    right before the first update of this process starts), send SIGINT to the whole group (what a terminal's
    Ctrl-C does): the run finishes that update, checkpoints and exits. Wait for the exit."""
    p = subprocess.Popen([sys.executable, *argv], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True)
    assert p.stderr is not None
    err: list[bytes] = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: os.read(p.stderr.fileno(), 4096), b"")))
    reader.start()
    end = time.time() + timeout
    while time.time() < end and p.poll() is None and not TQDM_BAR.search(b"".join(err).decode(errors="replace")):
        time.sleep(0.1)
    assert p.poll() is None, f"the recipe exited early: {b''.join(err).decode()[-2000:]}"
    os.killpg(p.pid, signal.SIGINT)
    out = p.stdout.read() if p.stdout else b""
    p.wait(timeout=300)
    reader.join(timeout=60)
    return subprocess.CompletedProcess(p.args, p.returncode, out.decode(), b"".join(err).decode())


@pytest.mark.parametrize("recipe, name", [("classic_control.py", "CartPole-v1__clip__s0"),
                                          ("mujoco.py", "Hopper-v5__clip__s0"),
                                          ("atari.py", "ALE-Pong-v5__clip__s0"),
                                          ("humanoid.py", "HumanoidBulletEnv-v0__clip__s0")])
def test_recipe_defaults_start_stop_and_resume(tmp_path, recipe, name):
    run = tmp_path / name
    p = _ctrl_c_in_first_update([str(ROOT / "recipes" / recipe), "--run-dir", str(tmp_path)])
    err = [line for line in p.stderr.splitlines() if line.strip() and not TQDM_BAR.search(line)]
    assert p.returncode == 130, p.stderr[-3000:]
    assert len(err) == 1 and err[0].startswith("interrupted (Ctrl-C)") and f"--resume {run}" in err[0], p.stderr[-3000:]
    first = checkpoint.latest(run)
    assert first is not None and checkpoint.load(first)["update"] >= 1
    done = len(rundir.read_rows(run / rundir.METRICS))

    p = _ctrl_c_in_first_update([str(ROOT / "recipes" / recipe), "--resume", str(run)])
    assert p.returncode == 130, p.stderr[-3000:]
    assert p.stdout.startswith("resuming ")
    updates = [int(r["update"]) for r in rundir.read_rows(run / rundir.METRICS)]
    assert updates == list(range(1, len(updates) + 1)) and len(updates) > done     # continued, no duplicates
    assert checkpoint.load(checkpoint.latest(run))["update"] == updates[-1]
