"""Users' own envs (ppo_pipeline.envs.ids): ``--env-id package.module:EnvClass`` and ``--env-module``,
trained in a real process, with their one-line refusals."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import ROOT, TINY_ARGS, one_line_error, subprocess_env

from ppo_pipeline import config
from ppo_pipeline import rundir
from ppo_pipeline import launch


def test_own_env_class_trains_in_a_real_process(tmp_path):
    """``--env-id custom_envs:LineWalk``: no registration; the run trains, evaluates and writes its outputs."""
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--env-id", "custom_envs:LineWalk",
                        *TINY_ARGS, "--run-dir", str(tmp_path)], capture_output=True, text=True, env=subprocess_env(), timeout=300)
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
                                             "--vector-env", "async", *TINY_ARGS, "--run-dir", str(tmp_path)]) == 0
    assert (tmp_path / "LineWalk-v0__clip__s0" / rundir.SUMMARY).is_file()



@pytest.mark.parametrize("argv, needle", [
    (["--env-id", "no_such_pkg:Env"], "module 'no_such_pkg' cannot be imported"),
    (["--env-id", "custom_envs:Nope"], "has no gymnasium.Env subclass 'Nope'; it has LineWalk"),
    (["--env-id", "json:dumps"], "has no gymnasium.Env subclass 'dumps'"),
    (["--env-module", "no_such_pkg"], "env_module 'no_such_pkg' cannot be imported"),
    (["--env-id", "LineWalk-v1"], "--env-id package.module:EnvClass"),
])
def test_own_env_bad_input(argv, needle, capsys, tmp_path):
    assert needle in one_line_error([*argv, "--run-dir", str(tmp_path)], capsys)
