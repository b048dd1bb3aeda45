"""How P members' stages become one computation, and a member's state comes back out of it (the solo format).

:class:`ppo_pipeline.algo.ppo.PPO` builds the same stages at every P; for P > 1 it asks :data:`STACKING` for the
members' agents stacked (:class:`.agent.PackAgent`), their member-wise objective (:class:`.objective.MemberObjective`),
and, for a checkpoint, member p's slice of everything stacked (:meth:`PackStacking.member_state`) or all members'
checkpoints stacked back (:meth:`PackStacking.load_members`). A member's slice is what its solo run would hold:
its weights, Adam's moments, loss state (beta), normalization statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..algo.objectives import make_loss, set_beta, set_clip_epsilon
from ..config import Config
from .agent import PackAgent
from .objective import MemberObjective


class PackStacking:
    """The stacking of :mod:`ppo_pipeline.pack` (module docstring)."""

    def agent(self, agents: Sequence[Any]) -> PackAgent:
        return PackAgent(agents)

    def objective(
        self, agent: PackAgent, members: Sequence[Config], *, compile: bool = False, before_retry: Any = None
    ) -> MemberObjective:
        return MemberObjective(agent, members, compile=compile, before_retry=before_retry).to(agent.device)

    def member_state(self, ppo: Any, p: int) -> dict[str, Any]:
        """Member p's solo-format agent, optimizer, loss, statistics (``ppo``: a :class:`~ppo_pipeline.algo.ppo.PPO`)."""
        cfg = ppo.members[p]
        agent = ppo.agent.member_agent(p)
        loss = make_loss(cfg, agent)
        set_clip_epsilon(loss, float(ppo.objective.epsilon[p]))
        set_beta(loss, float(ppo.objective.beta[p]))
        return {
            "agent": agent.state_dict(),
            "loss": loss.state_dict(),
            "optimizer": slice_optimizer(ppo.adam.state_dict(), p),
            "obs_norm": slice_stats(ppo.obs_norm.state_dict(), p) if ppo.obs_norm else None,
            "reward_scaler": slice_stats(ppo.reward_scaler.state_dict(), p) if ppo.reward_scaler else None,
        }

    def load_members(self, ppo: Any, states: Sequence[dict[str, Any]]) -> None:
        """Every member's solo-format state (``states[p]``) into the stacked stages."""
        for p, s in enumerate(states):
            ppo.agent.load_member(p, s["agent"])
        ppo.adam.load_state_dict(stack_optimizer([s["optimizer"] for s in states]))
        ppo.objective.set_beta([float(s["loss"].get("beta", b)) for s, b in zip(states, ppo.objective.beta)])
        if ppo.obs_norm is not None:
            ppo.obs_norm.load_state_dict(stack_stats([s["obs_norm"] for s in states]))
        if ppo.reward_scaler is not None:
            ppo.reward_scaler.load_state_dict(stack_stats([s["reward_scaler"] for s in states]))


STACKING = PackStacking()


def slice_optimizer(state: dict[str, Any], p: int) -> dict[str, Any]:
    """Member p's slice of a stacked optimizer's ``state_dict`` (Adam: its moments; the step count is shared)."""
    return {
        "param_groups": state["param_groups"],
        "state": {
            i: {k: (v[p].clone() if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in s.items()}
            for i, s in state["state"].items()
        },
    }


def stack_optimizer(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`slice_optimizer` over every member."""
    first = states[0]
    return {
        "param_groups": first["param_groups"],
        "state": {
            i: {
                k: (torch.stack([s["state"][i][k] for s in states]) if torch.is_tensor(v) and v.dim() > 0 else v)
                for k, v in st.items()
            }
            for i, st in first["state"].items()
        },
    }


def slice_stats(state: dict[str, Any], p: int) -> dict[str, Any]:
    """Member p's normalization statistics out of the pack's (member axis first; a ``Dict`` space's per entry)."""
    if all(isinstance(v, dict) for v in state.values()):
        return {k: slice_stats(v, p) for k, v in state.items()}
    return {k: (v[p].copy() if isinstance(v, np.ndarray) and v.ndim > 0 else v) for k, v in state.items()}


def stack_stats(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Inverse of :func:`slice_stats` over every member (a count is shared: every member moves its statistics at the
    same steps)."""
    first = states[0]
    if all(isinstance(v, dict) for v in first.values()):
        return {k: stack_stats([s[k] for s in states]) for k in first}
    return {k: v if k == "count" else np.stack([np.asarray(s[k]) for s in states]) for k, v in first.items()}


__all__ = ["STACKING", "PackStacking", "slice_optimizer", "slice_stats", "stack_optimizer", "stack_stats"]
