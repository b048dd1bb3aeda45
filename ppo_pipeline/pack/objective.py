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
from collections.abc import Callable, Sequence

import torch
from tensordict import TensorDict, TensorDictBase
from torch import nn

from .. import batch as keys
from ..algo import compiling
from ..algo.objectives import KL_CHUNK, beta_of, epsilon_of
from ..config import Config
from .agent import PackAgent

ADVANTAGE_EPS = torch.finfo(torch.float).resolution  # torchrl's advantage standardization clamps std here


class MemberObjective(nn.Module):
    """-L_p + c1 L^VF_p - c2 S_p for every member p (see the module docstring)."""

    epsilon: torch.Tensor  # buffers, registered in __init__
    beta: torch.Tensor
    alive: torch.Tensor

    def __init__(
        self,
        agent: PackAgent,
        members: Sequence[Config],
        *,
        compile: bool = False,
        before_retry: Callable[[], None] | None = None,
    ):
        super().__init__()
        first = members[0]
        self.agent = agent
        self.value_coef, self.entropy_coef = first.value_coef, first.entropy_coef
        self.clip_value = first.clip_value
        self.normalize_advantage = first.normalize_advantage
        self.register_buffer("epsilon", torch.tensor([epsilon_of(c) for c in members]))  # x alpha: set_epsilon
        self.register_buffer("beta", torch.tensor([beta_of(c) for c in members]))
        self.register_buffer("alive", torch.ones(len(members), dtype=torch.bool))
        self.members = len(members)
        self._step = compiling.MaybeCompiled(self._loss_step, compile, "pack update", before_retry=before_retry)

    def forward(
        self, mb: TensorDictBase, alpha: float | torch.Tensor = 1.0, weight: torch.Tensor | None = None
    ) -> TensorDict:
        """``alpha`` scales epsilon (Table 5's schedule). ``weight`` [P, M] (a rank's share of a minibatch over W
        ranks: :class:`~ppo_pipeline.algo.sampler.MemberSampler`): each term the rows' weighted sum, not their mean."""
        p, m = mb.batch_size

        def mean(x: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
            return x.mean(dims) if weight is None else (x * weight.view(p, m, *[1] * (x.dim() - 2))).sum(dims)

        adv = mb[keys.ADVANTAGE]  # [P, M, 1]
        if self.normalize_advantage and m > 1:
            adv = (adv - adv.mean((1, 2), keepdim=True)) / adv.std((1, 2), keepdim=True).clamp_min(ADVANTAGE_EPS)
        obs = mb[keys.OBSERVATION]  # [P, M, ...], or a Dict's TensorDict [P, M] of entries
        x = self.agent.features(obs)
        params = self.agent.params(obs, x)
        dist = self.agent.dist(params)
        log_prob = dist.log_prob(mb[keys.ACTION])  # [P, M]
        old = mb[keys.ACTION_LOG_PROB]
        log_weight = (log_prob - old).unsqueeze(-1)  # log r, [P, M, 1]
        eps = (self.epsilon * alpha).view(p, 1, 1)
        low = torch.where(eps < 1, torch.log1p(-eps.clamp(max=1 - 1e-12)), torch.full_like(eps, -math.inf))
        clipped = log_weight.clamp(low, torch.log1p(eps))
        gain = torch.minimum(log_weight.exp() * adv, clipped.exp() * adv)  # min(r A, clip(r) A)
        old_dist = self.agent.dist({k: mb[k] for k in self.agent.param_keys})
        kl = torch.distributions.kl_divergence(old_dist, dist).unsqueeze(-1)  # [P, M, 1]
        objective = -gain + self.beta.view(p, 1, 1) * kl
        entropy = dist.entropy()  # [P, M]
        value = self.agent.value_net(x)
        target = mb[keys.VALUE_TARGET]
        value_loss = (target - value).pow(2)
        if self.clip_value:
            old_value = mb[keys.STATE_VALUE]
            value_clipped = old_value + (value - old_value).clamp(-self.clip_value, self.clip_value)
            value_loss = torch.maximum(value_loss, (target - value_clipped).pow(2))
        out = {
            "loss_objective": mean(objective, (1, 2)),
            "loss_critic": self.value_coef * mean(value_loss, (1, 2)),
            "loss_entropy": -self.entropy_coef * mean(entropy, (1,)),
            "entropy": mean(entropy.detach(), (1,)),
            "kl_approx": mean((old - log_prob).detach(), (1,)),
            "clip_fraction": mean((clipped != log_weight).to(log_weight.dtype), (1, 2)).detach(),
            "kl": mean(kl.detach(), (1, 2)),
        }
        total = out["loss_objective"] + out["loss_critic"] + out["loss_entropy"]
        out["loss"] = torch.where(self.alive, total, torch.zeros_like(total)).sum()
        out["total"] = total.detach()
        return TensorDict(out, [])

    # --- the objective stage's interface (as ppo_pipeline.algo.objectives.TorchRLObjective's) ------------------
    def _loss_step(self, mb: TensorDictBase, weight: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self(mb, weight=weight)
        out["loss"].backward()
        return {
            "policy_loss": out["loss_objective"].detach(),
            "value_loss": out["loss_critic"].detach() / max(self.value_coef, 1e-12),
            "entropy": out["entropy"],
            "approx_kl": out["kl_approx"],
            "clip_fraction": out["clip_fraction"],
            "loss": out["total"],
        }

    def step(self, mb: TensorDictBase) -> dict[str, torch.Tensor]:
        """mb [P, M] -> the members' terms [P] (``loss``: each member's Eq. 9 total), after the backward of their
        sum over the live members (a minibatch with ``row_weight``: its weighted sums, see :meth:`forward`)."""
        return self._step(mb, mb[keys.ROW_WEIGHT] if keys.ROW_WEIGHT in mb.keys() else None)

    @torch.no_grad()
    def mean_kl(self, batch: TensorDictBase) -> torch.Tensor:
        """d_p = E_t[KL[pi_old(.|s_t), pi(.|s_t)]] per member [P], over the batch [P, E, T] (after the update)."""
        flat = batch.reshape(self.members, -1)
        total = torch.zeros(self.members, device=self.epsilon.device)
        for part in flat.split(KL_CHUNK, dim=1):
            old = self.agent.dist({k: part[k] for k in self.agent.param_keys})
            new = self.agent.dist(self.agent.params(part[keys.OBSERVATION]))
            total += torch.distributions.kl_divergence(old, new).sum(1)
        return total.cpu() / flat.batch_size[1]

    def set_epsilon(self, values: Sequence[float]) -> None:
        """epsilon_p x alpha of this update (inf where a member does not clip), written in place (no recompile)."""
        self.epsilon.copy_(torch.tensor(values, dtype=self.epsilon.dtype))

    def set_beta(self, values: Sequence[float]) -> None:
        self.beta.copy_(torch.tensor(values, dtype=self.beta.dtype))
