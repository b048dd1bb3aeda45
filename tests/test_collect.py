"""The lean collector (ppo_pipeline.algo.collect): the batch contract (keys, shapes, dtypes) on the real
envs, consumed by GAE and the loss; raw samples for the loss, clipped actions for the env; the V(s_{t+1})
bootstrap on truncation."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import tiny
from tensordict import TensorDict

from ppo_pipeline import config, envs
from ppo_pipeline.algo import normalize
from ppo_pipeline.algo.advantages import make_gae
from ppo_pipeline.algo.collect import Collector
from ppo_pipeline.algo.objectives import make_loss
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.sampler import MinibatchSampler
from ppo_pipeline.envs import seeds


def _collect(cfg: config.Config, T: int = 16, **norm):
    venv = envs.make_vector_env(cfg, cfg.num_envs)
    agent = Agent(venv.single_observation_space, venv.single_action_space, cfg)
    col = Collector(venv, agent, T, torch.device("cpu"), **norm)
    col.reset(seeds.env_seeds(cfg.seed, cfg.num_envs))
    batch = col.collect()
    venv.close()
    return agent, batch, col



@pytest.mark.parametrize("preset,env_id", [(config.classic, "CartPole-v1"), (config.mujoco, "Hopper-v5"),
                                           (config.atari, "ALE/Pong-v5")])
def test_collector_batch_contract(tmp_path, preset, env_id):
    cfg = tiny(preset, tmp_path, env_id=env_id, num_envs=2, vector_env="sync")
    norm = {}
    if cfg.normalize_obs:
        norm = {"obs_norm": normalize.ObsNormalizer((11,), 10.0), "reward_scaler": normalize.RewardScaler(2, 0.99, 10.0)}
    agent, batch, col = _collect(cfg, **norm)
    E, T = 2, 16
    assert isinstance(batch, TensorDict) and batch.batch_size == torch.Size([E, T])
    obs = batch["observation"]
    if env_id.startswith("ALE"):
        assert obs.shape == (E, T, 4, 84, 84) and obs.dtype == torch.uint8
        assert batch["action"].dtype == torch.int64 and batch["logits"].shape == (E, T, 6)
    elif env_id == "CartPole-v1":
        assert obs.shape == (E, T, 4) and obs.dtype == torch.float32
        assert batch["action"].shape == (E, T) and batch["logits"].shape == (E, T, 2)
    else:
        assert obs.shape == (E, T, 11) and obs.dtype == torch.float32 and obs.abs().max() <= 10
        assert batch["action"].shape == (E, T, 3) and batch["loc"].shape == (E, T, 3)
        assert batch["scale"].shape == (E, T, 3)
    assert batch["action_log_prob"].shape == (E, T)
    assert batch["state_value"].shape == (E, T, 1)
    for key in ("reward", "state_value"):
        assert batch["next", key].shape == (E, T, 1) and batch["next", key].dtype == torch.float32
    for key in ("done", "terminated", "truncated"):
        assert batch["next", key].shape == (E, T, 1) and batch["next", key].dtype == torch.bool
    assert col.global_step == E * T
    # GAE adds advantage and value_target
    gae = make_gae(cfg)
    gae(batch)
    assert batch["advantage"].shape == (E, T, 1) and batch["value_target"].shape == (E, T, 1)
    torch.testing.assert_close(batch["value_target"], batch["advantage"] + batch["state_value"])
    # the loss consumes a minibatch of it
    loss = make_loss(cfg, agent)
    mb = next(iter(MinibatchSampler(1, 8)(batch)))
    out = loss(mb)
    for key in ("loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx"):
        assert out[key].shape == () and torch.isfinite(out[key])



def test_continuous_actions_clipped_for_env_raw_for_loss(tmp_path):
    cfg = tiny(config.mujoco, tmp_path, env_id="InvertedPendulum-v5", num_envs=1)
    venv = envs.make_vector_env(cfg, 1)
    agent = Agent(venv.single_observation_space, venv.single_action_space, cfg)
    with torch.no_grad():
        agent.policy_head.log_std.fill_(2.0)  # wide Gaussian: samples leave [-3, 3]
    sent = []
    step = venv.step

    def spy(action):
        sent.append(np.array(action))
        return step(action)

    venv.step = spy
    col = Collector(venv, agent, 64, torch.device("cpu"))
    col.reset([0])
    batch = col.collect()
    raw = batch["action"].numpy().reshape(-1)
    sent_all = np.concatenate(sent).reshape(-1)
    assert np.abs(raw).max() > 3.0  # the stored sample is unclipped
    assert np.abs(sent_all).max() <= 3.0 and np.allclose(sent_all, np.clip(raw, -3, 3))



def test_truncation_bootstraps_termination_does_not(tmp_path):
    cfg = tiny(config.classic, tmp_path, num_envs=1)
    venv = gym.vector.SyncVectorEnv([lambda: gym.wrappers.RecordEpisodeStatistics(
        gym.make("CartPole-v1", max_episode_steps=5))], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    agent = Agent(venv.single_observation_space, venv.single_action_space, cfg)
    col = Collector(venv, agent, 12, torch.device("cpu"))
    col.reset([0])
    batch = col.collect()[0]
    trunc = batch["next", "truncated"][:, 0] & ~batch["next", "terminated"][:, 0]
    term = batch["next", "terminated"][:, 0]
    assert trunc.any()
    nv = batch["next", "state_value"][:, 0]
    assert (nv[term] == 0).all()
    t = int(torch.nonzero(trunc)[0])
    # the bootstrap value is V(final obs), not V(reset obs) which is the next row's state_value
    assert nv[t] != 0 and nv[t] != batch["state_value"][t + 1, 0]
