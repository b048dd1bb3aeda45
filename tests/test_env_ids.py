"""Users' own envs (ppo_pipeline.envs.ids): ``--env-id package.module:EnvClass`` and ``--env-module``,
trained in a real process, with their one-line refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ppo_pipeline import config
from ppo_pipeline.run import launch, rundir

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--num-envs", "4", "--num-steps", "32", "--minibatch-size", "64", "--epochs", "2", "--total-steps", "1024",
        "--eval-every", "4", "--eval-episodes", "2", "--eval-max-steps", "60", "--torch-threads", "1",
        "--no-progress"]


def _error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        launch.main(config.classic, "t", argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err



def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}



def test_own_env_class_trains_in_a_real_process(tmp_path):
    """``--env-id custom_envs:LineWalk``: no registration; the run trains, evaluates and writes its outputs."""
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--env-id", "custom_envs:LineWalk",
                        *TINY, "--run-dir", str(tmp_path)], capture_output=True, text=True, env=_env(), timeout=300)
    assert p.returncode == 0, p.stderr
    run = tmp_path / "custom_envs-LineWalk__clip__s0"
    assert json.loads((run / rundir.CONFIG).read_text())["env_id"] == "custom_envs:LineWalk"
    assert json.loads((run / rundir.SUMMARY).read_text())["status"] == "finished"
    assert len(rundir.read_rows(run / rundir.EPISODES)) > 0



def test_env_module_registers_ids_before_resolution(tmp_path, capsys):
    """``--env-module custom_envs --env-id LineWalk-v0``: the module is imported first (also in async
    env workers, which are fresh processes)."""
    sys.modules.pop("custom_envs", None)
    assert launch.main(config.classic, "t", ["--env-module", "custom_envs", "--env-id", "LineWalk-v0",
                                             "--vector-env", "async", *TINY, "--run-dir", str(tmp_path)]) == 0
    assert (tmp_path / "LineWalk-v0__clip__s0" / rundir.SUMMARY).is_file()



@pytest.mark.parametrize("argv, needle", [
    (["--env-id", "no_such_pkg:Env"], "module 'no_such_pkg' cannot be imported"),
    (["--env-id", "custom_envs:Nope"], "has no gymnasium.Env subclass 'Nope'; it has LineWalk"),
    (["--env-id", "json:dumps"], "has no gymnasium.Env subclass 'dumps'"),
    (["--env-module", "no_such_pkg"], "env_module 'no_such_pkg' cannot be imported"),
    (["--env-id", "LineWalk-v1"], "--env-id package.module:EnvClass"),
])
def test_own_env_bad_input(argv, needle, capsys, tmp_path):
    assert needle in _error([*argv, "--run-dir", str(tmp_path)], capsys)
