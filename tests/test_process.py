"""A command's own process starts and exits without the garbage collector's passes over the imported modules
(ppo_pipeline.process); a user's Python keeps its collector as it is."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

STATES = textwrap.dedent(
    """
    import gc
    from ppo_pipeline import process
    assert gc.isenabled()
    process.started()                                   # start_up() did not run: nothing
    assert gc.isenabled() and gc.get_freeze_count() == 0
    process.start_up()
    assert not gc.isenabled() and process.starting()
    process.start_up()                                  # again: still off, still one start
    process.started()
    frozen = gc.get_freeze_count()
    assert gc.isenabled() and not process.starting() and frozen > 1000
    process.started()                                   # once only
    assert gc.get_freeze_count() == frozen
    kept = [[] for _ in range(5000)]
    process.exiting()
    assert gc.isenabled() and gc.get_freeze_count() >= frozen + 5000
    print("ok")
    """
)

HOOK = textwrap.dedent(
    """
    import gc
    from ppo_pipeline.run.callbacks import Callback

    class Seen(Callback):
        def on_update(self, run, row):
            if row["update"] == 1:
                print("gc", gc.isenabled(), gc.get_freeze_count(), flush=True)
    """
)


def test_process_states():
    """start_up turns the collector off, started freezes what is alive and turns it on (once, and only after
    start_up), exiting freezes everything."""
    p = subprocess.run([sys.executable, "-c", STATES], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


@pytest.mark.slow
def test_recipe_trains_with_start_up_frozen(tmp_path):
    """A recipe's process trains with the collector on and start-up's objects (torch's, torchrl's modules: well
    over 100,000) frozen out of its passes."""
    (tmp_path / "seen_hook.py").write_text(HOOK)
    argv = ["--total-steps", "1024", "--eval-episodes", "0", "--no-progress", "--no-tensorboard"]
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "recipes" / "classic_control.py"),
            *argv,
            "--run-dir",
            str(tmp_path / "runs"),
            "--callbacks",
            "seen_hook:Seen",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**_env(), "PYTHONPATH": str(tmp_path)},
    )
    assert p.returncode == 0, p.stderr[-2000:]
    line = next(x for x in p.stdout.splitlines() if x.startswith("gc "))
    _, enabled, frozen = line.split()
    assert enabled == "True" and int(frozen) > 100_000, line


def test_users_python_keeps_its_collector(tmp_path):
    """launch.main in a user's Python (here pytest's) trains without turning the collector off or freezing."""
    from ppo_pipeline import config, launch

    frozen = gc.get_freeze_count()
    argv = ["--total-steps", "512", "--eval-episodes", "0", "--no-progress", "--no-tensorboard", "--name", "u"]
    assert launch.main(config.classic, "t", [*argv, "--run-dir", str(tmp_path)]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
