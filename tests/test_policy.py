"""The policy is defined once (ppo_pipeline.algo.distributions / policy): the collector, the loss,
evaluation and export are built from the same module and the same head, so on random observations they
agree -- the collector's stored log-probs are the loss's, evaluation's actions are the head's mode, and
the exported program (torch.export) acts exactly like evaluation. Nothing is patched here."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import tiny
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from ppo_pipeline import config
from ppo_pipeline.algo import distributions
from ppo_pipeline.algo.collect import Collector
from ppo_pipeline.algo.evaluation import AgentPolicy
from ppo_pipeline.algo.normalize import ObsNormalizer
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.spaces import obs_tensor
from ppo_pipeline.envs import make_vector_env
from ppo_pipeline.envs.seeds import env_seeds
from ppo_pipeline.tools.exported import exported_module, program

SPACES = {   # name -> (preset, observation space, action space)
    "discrete": (config.classic, gym.spaces.Box(-5, 5, (4,), np.float64), gym.spaces.Discrete(3)),
    "box": (config.mujoco, gym.spaces.Box(-5, 5, (6,), np.float64), gym.spaces.Box(-0.4, 0.7, (2,))),
    "pixels": (config.atari, gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6)),
    "multi-discrete": (config.classic, gym.spaces.Box(-5, 5, (4,), np.float64), gym.spaces.MultiDiscrete([3, 2, 4])),
    "multi-binary": (config.classic, gym.spaces.Box(-5, 5, (4,), np.float64), gym.spaces.MultiBinary(3)),
}


def randomize(agent: Agent, seed: int) -> None:
    """Parameters away from the init (whose 0.01 policy gain makes every action nearly uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in agent.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_collector_loss_evaluation_and_export_agree(name: str, seed: int) -> None:
    preset, obs_space, act_space = SPACES[name]
    torch.manual_seed(seed)
    agent = Agent(obs_space, act_space, preset())
    randomize(agent, seed)
    rng = np.random.default_rng(seed)
    n = 64
    obs = rng.integers(0, 256, (n, *obs_space.shape)).astype(np.uint8) if name == "pixels" else \
        rng.normal(0.0, 3.0, (n, *obs_space.shape))
    norm = None
    if name != "pixels":
        norm = ObsNormalizer(obs_space.shape, clip=10.0)
        norm(rng.normal(1.0, 2.0, (500, *obs_space.shape)))        # statistics away from (0, 1)
        norm = norm.frozen_copy()
    x = obs_tensor(norm(obs, update=False) if norm else obs, torch.device("cpu"))

    # the collector's path: a sample and its log-prob, with the distribution's parameters
    out = agent.act(x)
    # the loss's path: torchrl's ProbabilisticActor over the same TensorDict keys gives that log-prob
    with torch.no_grad():
        dist = agent.actor.get_dist(TensorDict({"observation": x}, [n]))
        assert torch.allclose(dist.log_prob(out["action"]), out["action_log_prob"], rtol=1e-6, atol=1e-6)
        # ... and the same mode the head defines (the distribution's own argmax / mean)
        mode = agent.policy_head.mode({k: out[k] for k in agent.param_keys})
        assert torch.equal(mode, dist.mode)
    # evaluation's path (raw observations in, env actions out) is the head's mode, clipped to the bounds
    evaluated = AgentPolicy(agent, norm, act_space)(obs)
    expected = mode.numpy() if name != "box" else np.clip(mode.numpy(), act_space.low, act_space.high)
    np.testing.assert_array_equal(evaluated, expected)
    # export's path: the torch.export program's module, raw observations in, acts exactly as evaluation does
    exported = program(exported_module(agent, norm, act_space), obs_space).module()
    np.testing.assert_allclose(exported(torch.from_numpy(obs)).numpy(), evaluated, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("preset,env_id", [(config.classic, "CartPole-v1"), (config.mujoco, "Pendulum-v1")])
def test_collected_log_probs_are_the_losses(tmp_path, preset, env_id: str) -> None:
    """On a real batch: every stored log pi_old(a|s) is what the loss's actor computes for (s, a), so the
    first epoch's ratio is 1 before any step."""
    cfg = tiny(preset, tmp_path, env_id=env_id, num_envs=2, num_steps=32)
    envs = make_vector_env(cfg, cfg.num_envs)
    try:
        agent = Agent(envs.single_observation_space, envs.single_action_space, cfg)
        norm = ObsNormalizer(envs.single_observation_space.shape, cfg.clip_obs) if cfg.normalize_obs else None
        collector = Collector(envs, agent, cfg.num_steps, torch.device("cpu"), obs_norm=norm)
        collector.reset(env_seeds(0, cfg.num_envs))
        batch = collector.collect().reshape(-1)
    finally:
        envs.close()
    with torch.no_grad():
        log_prob = agent.actor.get_dist(batch.select("observation")).log_prob(batch["action"])
    assert torch.allclose(log_prob, batch["action_log_prob"], rtol=1e-6, atol=1e-6)


def test_agent_from_specs_init():
    cfg = config.mujoco()
    agent = Agent(gym.spaces.Box(-1, 1, (11,)), gym.spaces.Box(-1, 1, (3,)), cfg)
    assert not agent.shared
    w = agent.policy_head.net[-1].weight
    assert torch.allclose(w @ w.T, 0.01 ** 2 * torch.eye(3), atol=1e-6)  # orthogonal, gain 0.01
    assert torch.all(agent.policy_head.log_std == 0)
    atari = Agent(gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6), config.atari())
    assert atari.shared and atari.value_net.out_features == 1


@settings(max_examples=60, deadline=None)
@given(batch=st.integers(1, 9), n=st.integers(1, 7), seed=st.integers(0, 2**31 - 1), spread=st.floats(0.01, 30.0))
def test_heads_written_out_log_probs_are_the_distributions_bit_for_bit(batch: int, n: int, seed: int, spread: float):
    """The collector's log pi(a) from the Categorical and Gaussian heads (written out, no object per step) is the
    distribution class's own, to the last bit (what the loss computes from the same parameters)."""
    g = torch.Generator().manual_seed(seed)
    cat = distributions.CategoricalHead(torch.nn.Identity())
    params = {"logits": torch.randn(batch, n, generator=g) * spread}
    action = cat.draw(params, g)
    assert torch.equal(cat.log_prob(params, action), distributions.build(cat, params).log_prob(action))
    gauss = distributions.GaussianHead(torch.nn.Identity(), n, log_std_init=float(np.log(spread)) - 1.0)
    params = gauss(torch.randn(batch, n, generator=g) * spread)
    action = gauss.draw(params, g) + torch.randn(batch, n, generator=g)  # off the mean too
    assert torch.equal(gauss.log_prob(params, action), distributions.build(gauss, params).log_prob(action))


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300), st.integers(1, 4), st.integers(0, 2**31 - 1), st.sampled_from([[], [64], [64, 64]]))
def test_mlp_is_sequentials_forward_bit_for_bit(batch: int, out: int, seed: int, hidden: list[int]) -> None:
    """networks.MLP (functions called per layer, no module call) gives nn.Sequential's outputs and gradients
    exactly, and still calls a layer it does not know (here a ReLU put in place of a Tanh)."""
    from torch import nn

    from ppo_pipeline.algo.networks import MLP, mlp

    torch.manual_seed(seed)
    ours = mlp(5, hidden, out, 0.01)
    assert isinstance(ours, MLP)
    if hidden:
        ours[1] = nn.ReLU()
    theirs = nn.Sequential(*list(ours))
    x = torch.randn(batch, 5)
    a, b = ours(x), theirs(x)
    assert torch.equal(a, b)
    ga = torch.autograd.grad(a.square().sum(), list(ours.parameters()))
    gb = torch.autograd.grad(b.square().sum(), list(theirs.parameters()))
    assert all(torch.equal(p, q) for p, q in zip(ga, gb))
