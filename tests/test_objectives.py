"""Plain tests of :mod:`ppo_pipeline.algo.objectives`: how make_loss / make_gae configure torchrl, and the documented
workaround for torchrl's per-minibatch KL-beta adaptation (the paper adapts beta once per policy update)."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import pytest
import torch
from tensordict import TensorDict
from torchrl.objectives import ClipPPOLoss, KLPENPPOLoss, PPOLoss

from ppo_pipeline.algo.advantages import make_gae
from ppo_pipeline.algo.objectives import (
    KLController,
    get_beta,
    make_loss,
    mean_kl,
    set_beta,
    set_clip_epsilon,
)
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.config import Config, atari, classic, mujoco

SPACES = (gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-1.0, 1.0, (2,)))


def _agent(cfg: Config) -> Agent:
    torch.manual_seed(0)
    return Agent(*SPACES, cfg)


def _minibatches(agent: Agent, n: int, k: int, shift: float) -> list[TensorDict]:
    """k minibatches of n samples whose old policy is the current one moved by ``shift`` (so KL > 0)."""
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(k):
        obs = torch.randn(n, 3, generator=g)
        with torch.no_grad():
            act = agent.act(obs)
        loc_old = act["loc"] + shift * torch.randn(act["loc"].shape, generator=g)
        out.append(TensorDict({
            "observation": obs, "action": act["action"], "action_log_prob": act["action_log_prob"],
            "advantage": torch.randn(n, 1, generator=g), "value_target": torch.randn(n, 1, generator=g),
            "state_value": act["state_value"], "loc": loc_old, "scale": act["scale"]}, [n]))
    return out


@pytest.mark.parametrize("objective,cls", [("clip", ClipPPOLoss), ("kl_adaptive", KLPENPPOLoss),
                                           ("kl_fixed", KLPENPPOLoss), ("none", PPOLoss)])
def test_make_loss_configuration(objective: str, cls: type) -> None:
    """Eq. 9 as configured: squared-error critic with c1, entropy bonus with c2, per-minibatch normalisation,
    plain (non-functional) modules."""
    cfg = atari(objective=objective)
    loss = make_loss(cfg, _agent(cfg))
    assert type(loss) is cls
    assert loss.loss_critic_type == "l2"
    assert float(loss.critic_coeff) == pytest.approx(cfg.value_coef)
    assert float(loss.entropy_coeff) == pytest.approx(cfg.entropy_coef)
    assert loss.normalize_advantage is cfg.normalize_advantage
    assert loss.functional is False and loss.entropy_bonus is True
    if cls is ClipPPOLoss:
        set_clip_epsilon(loss, 0.05)
        assert float(loss.clip_epsilon) == pytest.approx(0.05)
    if cls is KLPENPPOLoss:
        assert (loss.increment, loss.decrement) == (1.0, 1.0) and get_beta(loss) == cfg.kl_beta


def test_make_gae_configuration() -> None:
    for preset in (atari, mujoco, classic):
        cfg = preset()
        gae = make_gae(cfg)
        assert float(gae.gamma) == pytest.approx(cfg.gamma) and float(gae.lmbda) == pytest.approx(cfg.gae_lambda)
        assert gae.value_network is None and gae.average_gae is False


def test_torchrl_klpen_adapts_beta_every_minibatch() -> None:
    """The behaviour the workaround avoids: torchrl's own KLPENPPOLoss (increment=2, decrement=0.5) changes beta
    inside every forward call, i.e. after every minibatch and from that minibatch's KL alone."""
    cfg = mujoco(objective="kl_adaptive")
    agent = _agent(cfg)
    loss = KLPENPPOLoss(agent.actor, agent.critic, dtarg=cfg.kl_target, beta=1.0, functional=False,
                        loss_critic_type="l2")
    betas = [float(loss.beta)]
    for mb in _minibatches(agent, 64, 3, shift=1.0):   # KL >> 1.5 d_targ in every minibatch
        loss(mb)
        betas.append(float(loss.beta))
    assert betas == [1.0, 2.0, 4.0, 8.0]


def test_pipeline_klpen_keeps_beta_within_an_update() -> None:
    """The workaround: the pipeline's KLPENPPOLoss (increment=decrement=1) never moves beta in forward; the paper's
    rule (KLController) is applied once per update to d = mean KL over the whole batch (Sec. 4)."""
    cfg = mujoco(objective="kl_adaptive")
    agent = _agent(cfg)
    loss = make_loss(cfg, agent)
    mbs = _minibatches(agent, 64, 3, shift=1.0)
    for mb in mbs:
        loss(mb)
        assert get_beta(loss) == cfg.kl_beta
    d = mean_kl(agent, torch.cat(mbs))
    assert d > 1.5 * cfg.kl_target
    set_beta(loss, KLController(cfg.kl_target).next_beta(get_beta(loss), d))
    assert get_beta(loss) == 2 * cfg.kl_beta


def test_kl_penalty_uses_beta() -> None:
    """Eq. 8: loss_objective(beta) - loss_objective(0) = beta * E[KL]."""
    cfg = mujoco(objective="kl_fixed")
    agent = _agent(cfg)
    mb = _minibatches(agent, 32, 1, shift=0.5)[0]
    loss = make_loss(dataclasses.replace(cfg, kl_beta=3.0), agent)
    with torch.no_grad():
        out = loss(mb)
        set_beta(loss, 0.0)
        base = loss(mb)
    assert float(out["loss_objective"] - base["loss_objective"]) == pytest.approx(3.0 * float(out["kl"].mean()),
                                                                                 rel=1e-4)
