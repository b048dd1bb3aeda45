"""The torchrl half: torchrl envs behind the batched-env contract (dmc:, torchrl: ids, a user's factory and
transform chain, the Python entry point) and --collector torchrl emitting the lean collector's batch."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.algo.collect import Collector
from ppo_pipeline.algo.collect_torchrl import TorchRLCollector
from ppo_pipeline.algo.normalize import ObsNormalizer, RewardScaler
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.envs import make_vector_env, seeds
from ppo_pipeline.errors import ConfigError
from ppo_pipeline.run.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------------------------
# --collector torchrl: the same batch as the lean collector
# ------------------------------------------------------------------------------------------------------
def _collect(kind: str, cfg: config.Config, batches: int = 2):
    envs = make_vector_env(cfg, cfg.num_envs)
    torch.manual_seed(1)
    agent = Agent(envs.single_observation_space, envs.single_action_space, cfg)
    norm = ObsNormalizer(envs.single_observation_space.shape, cfg.clip_obs) if cfg.normalize_obs else None
    scaler = RewardScaler(cfg.num_envs, cfg.gamma, cfg.clip_reward) if cfg.scale_reward else None
    cls = Collector if kind == "lean" else TorchRLCollector
    c = cls(envs, agent, cfg.num_steps, torch.device("cpu"), obs_norm=norm, reward_scaler=scaler)
    c.reset(seeds.env_seeds(cfg.seed, cfg.num_envs))
    torch.manual_seed(2)                        # the same policy sampling
    out = [c.collect() for _ in range(batches)]
    envs.close()
    return out, c.episodes


CASES = {
    "cartpole": dict(preset=config.classic, num_envs=4, num_steps=64),
    # a 50-step time limit inside the batch: the bootstrap from the true final observation
    "linewalk-truncation": dict(preset=config.classic, env_id="tests.custom_envs:LineWalk", num_envs=3,
                                num_steps=70, minibatch_size=70),
    # Box actions (raw sample kept, clipped for the env), obs normalization and reward scaling, truncation
    "pendulum-normalized": dict(preset=config.mujoco, env_id="Pendulum-v1", num_envs=2, num_steps=256),
}


@pytest.mark.parametrize("case", list(CASES))
def test_torchrl_collector_batch_equals_lean(case):
    kw = dict(CASES[case])
    cfg = tiny(kw.pop("preset"), **kw)
    (lean, lean_eps), (trl, trl_eps) = _collect("lean", cfg), _collect("torchrl", cfg)
    for a, b in zip(lean, trl):
        assert a.batch_size == b.batch_size == torch.Size([cfg.num_envs, cfg.num_steps])
        keys = set(a.keys(True, True))
        assert keys == set(b.keys(True, True))
        for k in keys:
            assert a[k].shape == b[k].shape and a[k].dtype == b[k].dtype, k
            if k == ("next", "state_value"):    # V of final observations: a different batch size in the matmul
                torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-6)
            else:
                assert torch.equal(a[k], b[k]), k
    if case != "cartpole":
        assert any(bool((x["next", "truncated"] & ~x["next", "terminated"]).any()) for x in lean)
    if case == "pendulum-normalized":      # raw samples outside [-2, 2] are kept, not clipped
        assert any(bool((x["action"].abs() > 2).any()) for x in lean)
    assert vars(lean_eps[0]) == vars(trl_eps[0]) and len(lean_eps[0].returns) > 0


@pytest.mark.parametrize("workers", [1, 2])
def test_trainer_runs_with_torchrl_collector(tmp_path, workers):
    cfg = tiny(config.classic, tmp_path, num_envs=4, num_steps=32, total_steps=4 * 32 * 3, collector="torchrl",
               collector_workers=workers, eval_episodes=2, torch_threads=1)
    summary = Trainer(cfg).train()
    assert summary["updates"] == 3 and summary["total_steps"] == 384
    assert summary["episodes"] > 0 and summary["final_eval_return_mean"] > 0
    rows = (cfg.run_path() / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 3


def test_torchrl_collector_resumes(tmp_path):
    cfg = tiny(config.classic, tmp_path, num_envs=2, num_steps=32, total_steps=2 * 32 * 4, collector="torchrl",
               eval_episodes=0, torch_threads=1, checkpoint_every=1)
    Trainer(cfg).train(stop_after=2)
    from ppo_pipeline.run import checkpoint

    summary = Trainer(cfg).train(resume_from=checkpoint.latest(cfg.run_path()))
    assert summary["updates"] == 4 and summary["total_steps"] == 256


# ------------------------------------------------------------------------------------------------------
# torchrl envs behind the batched-env contract
# ------------------------------------------------------------------------------------------------------
def test_dmc_env_contract_time_limit_and_statistics():
    cfg = tiny(config.mujoco, env_id="dmc:cheetah-run", num_envs=2)
    envs = make_vector_env(cfg, 2)
    try:
        assert envs.single_observation_space.shape == (17,) and envs.single_action_space.shape == (6,)
        assert np.all(envs.single_action_space.low == -1) and np.all(envs.single_action_space.high == 1)
        obs, _ = envs.reset(seed=[0, 1])
        assert obs.shape == (2, 17) and obs.dtype == np.float32
        assert not np.array_equal(obs[0], obs[1])
        total = np.zeros(2)
        for t in range(1000):
            obs, r, term, trunc, info = envs.step(envs.action_space.sample())
            total += r
            if t < 999:
                assert not (term | trunc).any() and "final_obs" not in info
        assert trunc.all() and not term.any()                        # DMControl's 1000-step time limit
        assert info["final_obs"].shape == (2, 17) and not np.array_equal(info["final_obs"], obs)
        ep = info["final_info"]["episode"]
        assert list(ep["l"]) == [1000, 1000] and np.allclose(ep["r"], total)
        assert info["final_info"]["_episode"].all()
    finally:
        envs.close()


def test_dmc_pixels_observe_uint8_frames():
    cfg = tiny(config.mujoco, env_id="dmc:cheetah-run", pixels=True, num_envs=1)
    envs = make_vector_env(cfg, 1)
    try:
        obs, _ = envs.reset(seed=[0])
        assert obs.shape == (1, 3, 84, 84) and obs.dtype == np.uint8 and obs.max() > obs.min()
        assert Agent(envs.single_observation_space, envs.single_action_space, cfg).pixels
    finally:
        envs.close()


def test_user_factory_batched_by_itself_and_by_serial_env():
    for env_id in ("torchrl:tests.torchrl_envs:pendulum", "torchrl:tests.torchrl_envs:pendulum_batch"):
        cfg = tiny(config.mujoco, env_id=env_id, num_envs=3)
        envs = make_vector_env(cfg, 3)
        try:
            obs, _ = envs.reset(seed=[5, 6, 7])
            assert obs.shape == (3, 3) and obs.dtype == np.float32
            obs, r, term, trunc, _ = envs.step(np.zeros((3, 1), np.float32))
            assert r.shape == term.shape == trunc.shape == (3,)
        finally:
            envs.close()


def _cli_error(argv: list[str], tmp_path: Path, recipe: str = "mujoco.py") -> str:
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / recipe), *argv, "--run-dir", str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    return _one_error_line(p, tmp_path)


def _one_error_line(p: subprocess.CompletedProcess, tmp_path: Path) -> str:
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    assert not any(tmp_path.iterdir()), "nothing may start"
    return lines[0]


BAD = [
    (["--env-id", "dmc:cheetahh-run"], ["unknown DMControl domain 'cheetahh'", "did you mean cheetah"]),
    (["--env-id", "dmc:cheetah-fly"], ["has no task 'fly'", "its tasks: run"]),
    (["--env-id", "dmc:cheetah"], ["must be dmc:DOMAIN-TASK"]),
    (["--env-id", "torchrl:tests.torchrl_envs:bits"], ["action spec Binary [4]", "not supported"]),
    (["--env-id", "torchrl:tests.torchrl_envs:two_keys"], ["observation keys", "'observation'"]),
    (["--env-id", "torchrl:tests.torchrl_envs:nope"], ["has no callable 'nope'"]),
    (["--collector", "torchrl", "--collector-workers", "0"], ["collector_workers=0 must be >= 1"]),
    (["--collector-workers", "2", "--num-envs", "2"], ["needs --collector torchrl"]),
    (["--collector", "torchrl", "--collector-workers", "2", "--num-envs", "2"], ["running statistics"]),
    (["--env-id", "Hopper-v5", "--pixels"], ["only dmc: ids"]),
]


@pytest.fixture(scope="module")
def refused(tmp_path_factory) -> list[tuple[subprocess.CompletedProcess, Path]]:
    """Each BAD case's recipe process (two at a time) and its run dir."""
    dirs = [tmp_path_factory.mktemp("bad") for _ in BAD]
    argvs = [[sys.executable, str(ROOT / "recipes" / "mujoco.py"), *argv, "--run-dir", str(d)]
             for (argv, _), d in zip(BAD, dirs)]
    return list(zip(helpers.run_two_at_a_time(argvs), dirs))


@pytest.mark.parametrize("case", range(len(BAD)), ids=[b[1][0][:28] for b in BAD])
def test_bad_torchrl_input_is_one_line_exit_2(refused, case):
    line = _one_error_line(*refused[case])
    for n in BAD[case][1]:
        assert n in line, line


def test_atari_through_torchrl_backend_is_refused(tmp_path):
    assert "is an Atari game" in _cli_error(["--env-backend", "torchrl"], tmp_path, "atari.py")


def test_factory_with_wrong_batch_size_is_one_line():
    cfg = config.mujoco(env_id="torchrl:tests.torchrl_envs:pendulum")
    from ppo_pipeline.envs import torchrl as trl

    def four():
        return trl.make_torchrl_env(cfg, 4)

    trl.register("four", four)
    with pytest.raises(ConfigError, match=r"returned a batch of \[4\] envs where 2 are needed"):
        make_vector_env(tiny(config.mujoco, env_id="torchrl:four", num_envs=2), 2)
    from ppo_pipeline import envs

    multi = tiny(config.classic, env_id="torchrl:four", num_envs=4, collector="torchrl", collector_workers=2,
                 normalize_obs=False)
    with pytest.raises(ConfigError, match="registered in this process only"):
        envs.check(multi)


# ------------------------------------------------------------------------------------------------------
# The Python entry point, as the docs show it (docs/torchrl.md)
# ------------------------------------------------------------------------------------------------------
def readme_example() -> str:
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    found = [b for b in blocks if "ppo_pipeline.train(" in b]
    assert len(found) == 1, "README.md and docs/ show one torchrl example"
    return found[0]


def test_readme_torchrl_example_trains(tmp_path, monkeypatch):
    code = readme_example()
    assert len(code.strip().splitlines()) <= 12
    assert "total_steps=1_000_000" in code
    small = code.replace("total_steps=1_000_000", "total_steps=2048, eval_episodes=1, progress=False, "
                                                   "tensorboard=False, torch_threads=1")
    monkeypatch.chdir(tmp_path)
    exec(compile(small, "README.md", "exec"), {"__name__": "readme_example"})
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    cfg = json.loads((runs[0] / "config.json").read_text())
    assert cfg["env_id"].startswith("torchrl:") and cfg["steps_run"] == 2048
    summary = json.loads((runs[0] / "summary.json").read_text())
    assert summary["updates"] == 1 and summary["final_eval_return_mean"] is not None
