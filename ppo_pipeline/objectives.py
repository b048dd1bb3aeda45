"""The paper's surrogate objectives over torchrl's losses, the adaptive-KL beta rule, and GAE.

With r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t) and A_t the advantage estimate:

* ``none``        L^CPI  = E[r_t A_t]                                   (Eq. 6; Table 1, first row)
                  -> torchrl ``PPOLoss`` (the base class has no clipping or penalty)
* ``clip``        L^CLIP = E[min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t)]  (Eq. 7)
                  -> torchrl ``ClipPPOLoss``
* ``kl_fixed``    L^KLPEN = E[r_t A_t - beta KL[pi_old(.|s_t), pi(.|s_t)]] (Eq. 8), beta constant
* ``kl_adaptive`` Eq. 8 with beta adapted after each policy update (Sec. 4):
                  d = E[KL[pi_old, pi]]; d < d_targ/1.5 -> beta/2; d > 1.5 d_targ -> beta*2
                  -> torchrl ``KLPENPPOLoss`` for the penalty, :class:`KLController` for the rule.

Every loss adds c1 * (V(s_t) - V_targ)^2 (squared error, Eq. 9; optionally clipped) and
-c2 * entropy, and normalizes advantages per minibatch. torchrl returns *losses* (to minimise):
``loss_objective = -L``, ``loss_critic = c1 L^VF``, ``loss_entropy = -c2 S``; their sum is -L^{CLIP+VF+S}.

Workaround (the one place): torchrl's ``KLPENPPOLoss`` adapts beta inside every ``forward`` call,
i.e. after every minibatch and from that minibatch's KL alone. The paper adapts it once per policy
update from the KL over the batch. We build the loss with ``increment=decrement=1`` (its own rule
off) and apply the paper's rule in :class:`KLController`; ``tests/test_objectives.py`` shows the
per-minibatch behaviour this avoids.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase
from torchrl.objectives import ClipPPOLoss, KLPENPPOLoss, PPOLoss
from torchrl.objectives.value import GAE

from .config import Config
from .models import Agent


def make_loss(cfg: Config, agent: Agent) -> PPOLoss:
    """The torchrl loss module for ``cfg.objective``.

    In: a minibatch TensorDict with ``observation``, ``action``, ``action_log_prob``, ``advantage``,
    ``value_target`` (+ ``state_value`` for value clipping, + the old dist params for KL).
    Out: ``loss_objective``, ``loss_critic``, ``loss_entropy`` (when c2 > 0), ``entropy``, ``kl_approx``,
    ``clip_fraction`` (clip), ``kl`` (KL objectives).
    """
    common = dict(
        entropy_bonus=True,               # always computed so the entropy is logged; c2 = 0 adds nothing
        entropy_coeff=cfg.entropy_coef,
        critic_coeff=cfg.value_coef,
        loss_critic_type="l2",            # Eq. 9: squared error, not torchrl's default smooth-L1
        normalize_advantage=cfg.normalize_advantage,
        clip_value=cfg.clip_value if cfg.clip_value > 0 else None,
        functional=False,                 # plain modules: no per-call parameter swapping overhead
        log_explained_variance=False,     # the trainer computes it once over the whole batch instead
    )
    if cfg.objective == "clip":
        return ClipPPOLoss(agent.actor, agent.critic, clip_epsilon=cfg.clip_epsilon, **common)
    if cfg.objective in ("kl_adaptive", "kl_fixed"):
        return KLPENPPOLoss(agent.actor, agent.critic, dtarg=cfg.kl_target, beta=cfg.kl_beta,
                            increment=1.0, decrement=1.0, **common)
    if cfg.objective == "none":
        return PPOLoss(agent.actor, agent.critic, **common)
    raise ValueError(f"unknown objective {cfg.objective!r}")


class KLController:
    """The paper's adaptive-KL rule (Sec. 4), applied once per policy update.

    d < d_targ / 1.5 -> beta <- beta / 2;  d > d_targ * 1.5 -> beta <- beta * 2;  else unchanged.
    """

    def __init__(self, kl_target: float):
        self.kl_target = kl_target

    def update(self, beta: float, d: float) -> float:
        if d < self.kl_target / 1.5:
            return beta / 2.0
        if d > self.kl_target * 1.5:
            return beta * 2.0
        return beta


@torch.no_grad()
def mean_kl(agent: Agent, batch: TensorDictBase, chunk: int = 4096) -> float:
    """d = E_t[KL[pi_old(.|s_t), pi(.|s_t)]] over a flat batch holding the old dist params."""
    total, n = 0.0, 0
    for part in batch.split(chunk):
        old = agent.actor.build_dist_from_params(part)
        new = agent.actor.get_dist(part.select("observation").clone())
        kl = torch.distributions.kl_divergence(old, new)
        total += float(kl.sum())
        n += kl.numel()
    return total / max(n, 1)


def set_clip_epsilon(loss: PPOLoss, value: float) -> None:
    """Write epsilon * alpha into ClipPPOLoss's buffer (other objectives have none)."""
    if isinstance(loss, ClipPPOLoss):
        loss.clip_epsilon.fill_(value)


def get_beta(loss: PPOLoss) -> float | None:
    return float(loss.beta) if isinstance(loss, KLPENPPOLoss) else None


def set_beta(loss: PPOLoss, value: float) -> None:
    if isinstance(loss, KLPENPPOLoss):
        loss.beta.fill_(value)


def make_gae(cfg: Config) -> GAE:
    """torchrl's GAE over precomputed values (the collector evaluates V(s_t) and V(s_{t+1})).

    In: TensorDict [envs, T] with ``state_value``, ("next", ``state_value``), ("next", ``reward``),
    ("next", ``done``), ("next", ``terminated``). Out: adds ``advantage`` and ``value_target``.

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)        (Eq. 12)
    A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}                     (Eq. 11)
    V(s_{t+1}) of a truncated step is the value of the episode's true final observation, so a time
    limit bootstraps while a termination does not.
    """
    return GAE(gamma=cfg.gamma, lmbda=cfg.gae_lambda, value_network=None, average_gae=False)
