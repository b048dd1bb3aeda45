"""Env ids (ppo_pipeline.envs.ids): users' own envs (``--env-id package.module:EnvClass`` and ``--env-module``),
trained in a real process, with their one-line refusals; what an id is (its family, backend), decided once."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys

import pytest
from helpers import ROOT, TINY_ARGS, one_line_error, subprocess_env

from ppo_pipeline import config, launch, rundir


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
    env workers, which are fresh processes). Two workers and one update, no evaluation: each spawned worker
    costs seconds of imports, and one worker's import of the module is what is tested."""
    sys.modules.pop("custom_envs", None)
    small = [*TINY_ARGS, "--num-envs", "2", "--total-steps", "64", "--eval-episodes", "0"]   # later options win
    assert launch.main(config.classic, "t", ["--env-module", "custom_envs", "--env-id", "LineWalk-v0",
                                             "--vector-env", "async", *small, "--run-dir", str(tmp_path)]) == 0
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


# ------------------------------------------------------------------------------------------------------
# What an env id is, decided once (ppo_pipeline.envs.ids.family, EnvSpec, ppo_pipeline.envs.spec_of)
# ------------------------------------------------------------------------------------------------------
SPEC_TABLE = [   # (env_id, overrides, pack) -> (family, backend)
    ("CartPole-v1", {}, False, "classic", "gymnasium"),
    ("CartPole-v1", {}, True, "classic", "gymnasium"),             # even for a pack: the solo runs' own envs
    ("CartPole-v1", {"env_backend": "envpool"}, False, "classic", "envpool"),
    ("Hopper-v5", {}, False, "mujoco", "gymnasium"),
    ("Hopper-v5", {}, True, "mujoco", "envpool"),                  # a pack steps P times the envs
    ("Hopper-v5", {"env_backend": "gymnasium"}, True, "mujoco", "gymnasium"),
    ("Hopper-v5", {"env_backend": "torchrl"}, False, "mujoco", "torchrl"),
    ("ALE/Pong-v5", {}, False, "atari", "envpool"),
    ("ALE/Pong-v5", {"noop_max": 0}, False, "atari", "gymnasium"),  # envpool always takes >= 1 no-op
    ("PongNoFrameskip-v4", {}, False, "atari", "gymnasium"),        # envpool has v5 games only
    ("dmc:cartpole-balance", {}, False, "dmc", "torchrl"),
    ("dmc:cartpole-balance", {"pixels": True, "env_backend": "gymnasium"}, False, "dmc", "torchrl"),
    ("torchrl:torchrl_envs:pendulum", {}, False, "torchrl", "torchrl"),
    ("custom_envs:LineWalk", {}, False, "class", "gymnasium"),
    ("HumanoidBulletEnv-v0", {}, False, "bullet", "gymnasium"),
    ("FrozenLake-v1", {}, False, "other", "gymnasium"),
]


@pytest.mark.parametrize("env_id, overrides, pack, family, backend", SPEC_TABLE)
def test_spec_of_a_table_of_ids(env_id, overrides, pack, family, backend):
    from ppo_pipeline import envs
    from ppo_pipeline.envs import ids

    cfg = config.classic(env_id=env_id, **overrides)
    spec = envs.spec_of(cfg, pack=pack)
    assert (spec.id, spec.module, spec.family, spec.backend, spec.pixels, spec.pack) == (
        env_id, "", family, backend, cfg.pixels, pack)
    assert spec.family in ids.FAMILIES and ids.family(env_id) == family and ids.decided(env_id)
    assert spec.is_atari == (family == "atari") == ids.is_atari(env_id)
    assert spec.is_mujoco == (family == "mujoco") == ids.is_mujoco(env_id)
    assert spec.is_dmc == env_id.startswith(ids.DMC)
    assert spec.is_torchrl_id == ids.is_torchrl_id(env_id) and (not spec.is_torchrl_id or backend == "torchrl")
    assert envs.spec_of(cfg, pack=pack) is spec and envs.backend(cfg, pack=pack) == backend   # cached
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.family = "other"


def test_an_unregistered_id_is_not_decided_for_good():
    """An id no registry holds yet (``Pong`` before resolution, an id a module registers later) is looked at
    again next time, never cached as ``other``."""
    from ppo_pipeline import envs
    from ppo_pipeline.envs import ids

    assert ids.family("Pong") == "other" and not ids.decided("Pong")
    envs.spec_of(config.classic(env_id="Pong"))
    assert not any(k[0] == "Pong" for k in envs._SPECS)


@pytest.mark.parametrize("env_id, overrides", [
    ("CartPole-v1", {}),
    ("Hopper-v5", {"env_backend": "envpool"}),
    ("Hopper-v5", {"env_backend": "gymnasium"}),
    ("Pong", {}),                                           # -> ALE/Pong-v5 on envpool
    ("Pong", {"env_backend": "gymnasium", "vector_env": "sync"}),
    ("dmc:cartpole-balance", {}),
])
def test_a_runs_stages_derive_the_family_once(env_id, overrides, tmp_path, monkeypatch):
    """From preparation through the env checks, the training and evaluation envs, the budget line, the sweep's
    cost and the report's grouping, an env id's family is derived once (:func:`ids.derive_family`)."""
    from helpers import tiny

    from ppo_pipeline import envs
    from ppo_pipeline.envs import ids
    from ppo_pipeline.run.prepare import budget_line, check_envs
    from ppo_pipeline.sweeps import cost

    counts: dict[str, int] = {}
    derive = ids.derive_family

    def counted(e: str):
        counts[e] = counts.get(e, 0) + 1
        return derive(e)

    monkeypatch.setattr(ids, "_FAMILY", {})
    monkeypatch.setattr(envs, "_SPECS", {})
    monkeypatch.setattr(ids, "derive_family", counted)
    preset = config.atari if env_id == "Pong" else config.mujoco if env_id != "CartPole-v1" else config.classic
    cfg = tiny(preset, tmp_path, env_id=env_id, num_envs=2, **overrides)       # prepare(): the spec is built
    assert counts == {cfg.env_id: 1}
    check_envs(cfg)
    for kw in ({}, {"evaluation": True}):
        venv = envs.make_vector_env(cfg, 2, **kw)
        venv.reset(seed=[0, 1])
        venv.close()
    budget_line(cfg)
    cost.units([{"name": "r", "config": cfg.to_dict()}])
    importlib.import_module("ppo_pipeline.report.aggregate").family(cfg.env_id)
    assert counts == {cfg.env_id: 1}
    assert envs.spec_of(cfg).backend == ("envpool" if env_id == "Pong" and not overrides else
                                         overrides.get("env_backend", "torchrl" if env_id.startswith("dmc:") else "gymnasium"))
