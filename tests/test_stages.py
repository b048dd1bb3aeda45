"""Per-stage contracts: keys, shapes and dtypes of what each stage emits, on the real envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensordict import TensorDict

from ppo_pipeline import config, envs, normalize
from ppo_pipeline.collect import Collector
from ppo_pipeline.advantages import make_gae
from ppo_pipeline.models import Agent
from ppo_pipeline.objectives import make_loss
from ppo_pipeline.sampler import MinibatchSampler

from helpers import tiny


def _collect(cfg: config.Config, T: int = 16, **norm):
    venv = envs.make_vector_env(cfg, cfg.num_envs)
    agent = Agent(venv.single_observation_space, venv.single_action_space, cfg)
    col = Collector(venv, agent, T, torch.device("cpu"), **norm)
    col.reset(config.env_seeds(cfg.seed, cfg.num_envs))
    batch = col.collect()
    venv.close()
    return agent, batch, col


def test_atari_stack_observation_and_details(tmp_path):
    cfg = tiny(config.atari, tmp_path, num_envs=1)
    env = envs.gymnasium.env_factory(cfg)()
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # wrapper chain: frame stack > clip reward > fire reset > episodic life > stats > preprocessing
    chain, e = [], env
    while hasattr(e, "env"):
        chain.append(type(e).__name__)
        e = e.env
    assert chain[:6] == ["FrameStackObservation", "ClipRewardSign", "FireReset", "EpisodicLife",
                         "RecordEpisodeStatistics", "AtariPreprocessing"], chain
    pre = env.get_wrapper_attr("noop_max")
    assert pre == 30 and env.get_wrapper_attr("frame_skip") == 4
    assert env.unwrapped.get_action_meanings()[1] == "FIRE"
    rewards = set()
    for _ in range(400):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        rewards.add(r)
        if term or trunc:
            break
    assert rewards <= {-1.0, 0.0, 1.0}
    ev = envs.gymnasium.env_factory(cfg, evaluation=True)()
    names = []
    while hasattr(ev, "env"):
        names.append(type(ev).__name__)
        ev = ev.env
    assert "EpisodicLife" not in names and "ClipRewardSign" not in names


def test_episodic_life_ends_training_episode_but_not_game(tmp_path):
    cfg = tiny(config.atari, tmp_path, env_id="ALE/Breakout-v5", num_envs=1)
    env = envs.gymnasium.env_factory(cfg)()
    env.reset(seed=3)
    life_losses = 0
    for _ in range(3000):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        if term:
            lives = env.unwrapped.ale.lives()
            if lives > 0:  # a life lost: training episode over, game goes on
                life_losses += 1
                assert "episode" not in info
                env.reset()
                assert env.unwrapped.ale.lives() == lives
            else:
                assert "episode" in info  # real game over: stats recorded
                break
    assert life_losses >= 1


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
        agent.policy_net.log_std.fill_(2.0)  # wide Gaussian: samples leave [-3, 3]
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


def test_obs_normalizer_frozen_copy_does_not_move():
    n = normalize.ObsNormalizer((3,), clip=10.0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        n(rng.normal(5.0, 2.0, size=(4, 3)))
    frozen = n.frozen_copy()
    before = frozen.state_dict()
    out = frozen(rng.normal(100.0, 1.0, size=(4, 3)))
    assert np.array_equal(before["mean"], frozen.rms.mean) and out.max() == 10.0
    assert abs(float(n(np.full((1, 3), 5.0), update=False).mean())) < 0.5


def test_reward_scaler_divides_by_return_std():
    s = normalize.RewardScaler(2, gamma=0.99, clip=10.0)
    for _ in range(200):
        out = s(np.array([1.0, 1.0]), np.array([False, False]))
    assert np.allclose(out, 1.0 / np.sqrt(s.rms.var + 1e-8))


def test_env_seeds_never_overlap_across_seeds():
    seen: set[int] = set()
    for seed in range(20):
        ids = config.env_seeds(seed, 64) + config.env_seeds(seed, 16, evaluation=True)
        assert not seen & set(ids)
        seen |= set(ids)


def test_agent_from_specs_init():
    cfg = config.mujoco()
    agent = Agent(gym.spaces.Box(-1, 1, (11,)), gym.spaces.Box(-1, 1, (3,)), cfg)
    assert not agent.shared
    w = agent.policy_net.net[-1].weight
    assert torch.allclose(w @ w.T, 0.01 ** 2 * torch.eye(3), atol=1e-6)  # orthogonal, gain 0.01
    assert torch.all(agent.policy_net.log_std == 0)
    atari = Agent(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6), config.atari())
    assert atari.shared and atari.value_net.out_features == 1
