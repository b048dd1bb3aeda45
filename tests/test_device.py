"""The CUDA path (issue 27, "The GPU path"): the tests that take a device, run where one is there
(``scripts/device_check.sh`` on a machine lent with a GPU); skipped without CUDA, so CI never depends on one."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.run.trainer import Trainer

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (scripts/device_check.sh)")


@cuda
@pytest.mark.parametrize("preset,env_id,extra", [
    (config.classic, "CartPole-v1", {}),
    (config.mujoco, "Pendulum-v1", {"normalize_obs": True, "scale_reward": True}),
    (config.atari, "ALE/Pong-v5", {"env_backend": "gymnasium", "num_envs": 2, "num_steps": 32, "minibatch_size": 32}),
], ids=["cartpole", "pendulum", "pong-cnn"])
def test_a_run_trains_on_cuda(tmp_path, preset, env_id, extra):
    cfg = tiny(preset, tmp_path, env_id=env_id, device="cuda", eval_episodes=1, eval_max_steps=50, **extra)
    trainer = Trainer(cfg)
    summary = trainer.train()
    assert next(trainer.agent.parameters()).is_cuda
    assert summary["total_steps"] == cfg.num_updates * cfg.batch_size


@cuda
def test_a_pack_trains_on_cuda(tmp_path):
    members = [tiny(config.classic, tmp_path / "runs", env_id="CartPole-v1", device="cuda", seed=s, name=f"m{s}",
                    eval_episodes=0) for s in range(2)]
    summaries = Trainer(members, pack_dir=tmp_path / "pack").train()
    assert len(summaries) == 2


@cuda
def test_two_nccl_ranks_on_one_gpu_are_the_one_process_run(tmp_path):
    """Two ranks may share the one GPU (nccl); their parameters after each update equal the one-process run's."""
    import test_ranks

    cfg = tiny(config.classic, tmp_path, env_id="CartPole-v1", num_envs=4, num_steps=32, minibatch_size=32, epochs=2,
               total_steps=4 * 32 * test_ranks.UPDATES, device="cuda", dist_backend="nccl", eval_episodes=0)
    one = test_ranks.params_after_updates(cfg, test_ranks.Ranks(0, 1, cfg.num_envs, "cuda"))
    two = test_ranks.run_ranks(cfg, 2, tmp_path)
    for u in range(test_ranks.UPDATES):
        assert test_ranks.max_diff(one[u], two[u]) < 1e-4, u + 1
