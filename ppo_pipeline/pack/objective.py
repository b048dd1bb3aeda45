"""The member-wise surrogate: every member of a pack its own objective of the paper, in one computation.

With r = pi_theta(a|s) / pi_theta_old(a|s) and A the advantage (standardized per member and minibatch):

    L_p = E[ min(r A, clip(r, 1 - eps_p, 1 + eps_p) A) ] - beta_p E[ KL[pi_old(.|s), pi(.|s)] ]

covers the paper's four objectives at once: ``clip`` (Eq. 7) is beta_p = 0; ``kl_fixed`` / ``kl_adaptive``
(Eq. 8) are eps_p = inf, with beta_p constant or adapted after each update (:class:`BetaRule`); ``none``
(L^CPI, Eq. 6) is eps_p = inf and beta_p = 0. So all 11 rows of Table 1 for one task train as one pack.
Each member also gets c1 (V - V_targ)^2 (Eq. 9; optionally clipped) and -c2 S, like torchrl's losses,
whose terms and gradients member p's equal on member p's data (``tests/test_pack.py`` holds them against
``ClipPPOLoss``, ``KLPENPPOLoss`` and ``PPOLoss``). torchrl has no loss whose objective differs per member
of a batch: this module is that glue.

In: a minibatch TensorDict [P, M] (keys of :mod:`ppo_pipeline.batch`, ``advantage`` and ``value_target``
from GAE). Out: per-member terms [P] (``loss_objective``, ``loss_critic``, ``loss_entropy``, ``entropy``,
``kl_approx``, ``clip_fraction``, ``kl``) and ``loss``, the sum over the live members of their Eq. 9 totals
(so member p's gradient is its own).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from .. import batch as keys
from ..config import Config
from .agent import PackAgent

ADVANTAGE_EPS = torch.finfo(torch.float).resolution   # torchrl's advantage standardization clamps std here


def member_epsilon(cfg: Config) -> float:
    """epsilon of a member's clip (inf where its objective has none)."""
    return cfg.clip_epsilon if cfg.objective == "clip" else math.inf


def member_beta(cfg: Config) -> float:
    """beta of a member's KL penalty (0 where its objective has none)."""
    return cfg.kl_beta if cfg.objective in ("kl_adaptive", "kl_fixed") else 0.0


class MemberObjective(nn.Module):
    """-L_p + c1 L^VF_p - c2 S_p for every member p (see the module docstring)."""

    def __init__(self, agent: PackAgent, members: Sequence[Config]):
        super().__init__()
        first = members[0]
        self.agent = agent
        self.value_coef, self.entropy_coef = first.value_coef, first.entropy_coef
        self.clip_value = first.clip_value
        self.normalize_advantage = first.normalize_advantage
        self.register_buffer("epsilon", torch.tensor([member_epsilon(c) for c in members]))   # before alpha
        self.register_buffer("beta", torch.tensor([member_beta(c) for c in members]))
        self.register_buffer("alive", torch.ones(len(members), dtype=torch.bool))

    def forward(self, mb: TensorDictBase, alpha: float | torch.Tensor = 1.0) -> TensorDict:
        """``alpha`` scales epsilon (Table 5's schedule)."""
        p, m = mb.batch_size
        adv = mb[keys.ADVANTAGE]                                             # [P, M, 1]
        if self.normalize_advantage and m > 1:
            adv = (adv - adv.mean((1, 2), keepdim=True)) / adv.std((1, 2), keepdim=True).clamp_min(ADVANTAGE_EPS)
        x = self.agent.features(mb[keys.OBSERVATION])
        params = self.agent.policy_head(x)
        dist = self.agent.dist(params)
        log_prob = dist.log_prob(mb[keys.ACTION])                           # [P, M]
        old = mb[keys.ACTION_LOG_PROB]
        log_weight = (log_prob - old).unsqueeze(-1)                          # log r, [P, M, 1]
        eps = (self.epsilon * alpha).view(p, 1, 1)
        low = torch.where(eps < 1, torch.log1p(-eps.clamp(max=1 - 1e-12)), torch.full_like(eps, -math.inf))
        clipped = log_weight.clamp(low, torch.log1p(eps))
        gain = torch.minimum(log_weight.exp() * adv, clipped.exp() * adv)    # min(r A, clip(r) A)
        old_dist = self.agent.dist({k: mb[k] for k in self.agent.param_keys})
        kl = torch.distributions.kl_divergence(old_dist, dist).unsqueeze(-1)  # [P, M, 1]
        objective = -gain + self.beta.view(p, 1, 1) * kl
        entropy = dist.entropy()                                              # [P, M]
        value = self.agent.value_net(x)
        target = mb[keys.VALUE_TARGET]
        value_loss = (target - value).pow(2)
        if self.clip_value:
            old_value = mb[keys.STATE_VALUE]
            value_clipped = old_value + (value - old_value).clamp(-self.clip_value, self.clip_value)
            value_loss = torch.maximum(value_loss, (target - value_clipped).pow(2))
        out = {
            "loss_objective": objective.mean((1, 2)),
            "loss_critic": self.value_coef * value_loss.mean((1, 2)),
            "loss_entropy": -self.entropy_coef * entropy.mean(1),
            "entropy": entropy.detach().mean(1),
            "kl_approx": (old - log_prob).detach().mean(1),
            "clip_fraction": (clipped != log_weight).to(log_weight.dtype).mean((1, 2)).detach(),
            "kl": kl.detach().mean((1, 2)),
        }
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        out["loss"] = torch.where(self.alive, total, torch.zeros_like(total)).sum()
        out["total"] = total.detach()
        return TensorDict(out, [])
