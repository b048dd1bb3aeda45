"""Advantage estimation (paper Eqs. 10-12): GAE over the collector's batch, and the bootstrap V(s_{t+1}).

The collector evaluates V(s_t) for every step and V(s_{t+1}) for every next state (see
:func:`next_state_value`), so torchrl's ``GAE`` runs over precomputed values, with no network call:

    delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)        (Eq. 12)
    A_t     = delta_t + gamma lambda (1 - done_t) A_{t+1}                (Eq. 11; lambda = 1 is Eq. 10)
    V_t^targ = A_t + V(s_t)                                              (the value target of Eq. 9)
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

from .. import batch as keys
from .. import workarounds
from ..config import Config
from .ranks import ONE, Ranks

with workarounds.distribution_default_kept():  # torchrl's import turns it off process-wide (workaround 6)
    from torchrl.objectives.value import GAE


def next_state_value(
    value: torch.Tensor,
    last_value: torch.Tensor,
    final_value: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
) -> torch.Tensor:
    """V(s_{t+1}) for each step of a rollout, time first ([T, envs, 1]):

    * the episode goes on: V(s_{t+1}) is the next row's V(s_t) (``last_value`` after the last row);
    * a time limit truncated it: V(final observation) from ``final_value`` -- the bootstrap, since the
      state after a truncation is not terminal, only unobserved by the next row (which is a reset);
    * it terminated: 0 (the masks of Eq. 12 drop it anyway; 0 keeps the batch clean).
    """
    shifted = torch.cat([value[1:], last_value.unsqueeze(0)], 0)
    out = torch.where(truncated, final_value, shifted)
    return torch.where(terminated, torch.zeros_like(out), out)


def make_gae(cfg: Config) -> GAE:
    """torchrl's GAE over precomputed values (Eqs. 11-12, above).

    In: TensorDict [envs, T] with ``state_value``, ("next", ``state_value``), ("next", ``reward``),
    ("next", ``done``), ("next", ``terminated``). Out: adds ``advantage`` and ``value_target``.
    """
    return GAE(gamma=cfg.gamma, lmbda=cfg.gae_lambda, value_network=None, average_gae=False)


def explained_variance(batch: TensorDictBase, members: int = 1, ranks: Ranks = ONE) -> torch.Tensor:
    """1 - Var[V_targ - V] / Var[V_targ] per member [P] over the batch (a diagnostic of the critic; NaN where
    Var[V_targ] = 0); over W ranks, over every rank's rows (all-reduced sums)."""
    value = batch[keys.STATE_VALUE].reshape(members, -1)
    target = batch[keys.VALUE_TARGET].reshape(members, -1)
    if ranks.many:
        t, d = target.double(), (target - value).double()
        s = ranks.sum_(
            torch.stack([t.new_full(t.shape[:1], t.shape[1]), t.sum(1), (t**2).sum(1), d.sum(1), (d**2).sum(1)])
        )
        n = s[0]
        var = (s[2] - s[1] ** 2 / n) / (n - 1)
        var_d = (s[4] - s[3] ** 2 / n) / (n - 1)
        return torch.where(var > 0, 1 - var_d / var, torch.full_like(var, float("nan"))).float()
    var = target.var(1)
    return torch.where(var > 0, 1 - (target - value).var(1) / var, torch.full_like(var, float("nan")))
