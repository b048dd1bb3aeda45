"""P agents as one: the solo :class:`~ppo_pipeline.algo.policy.Agent` of each member, stacked.

Member p's agent is built exactly as its solo run builds it (same config, same seed, so the same initial
weights), then trunk, policy head and value net are stacked (:mod:`.stacked`): one call computes every
member's distribution parameters and values on inputs ``[P, B, *obs]`` -- for a ``Dict`` observation space a
TensorDict ``[P, B]`` of its entries, which the stacked ``CombinedEncoder`` (:class:`.stacked.VmapStacked`) reads
entry by entry as the solo one does; an ``action_mask`` entry goes to the head beside the features, as in the
solo agent. The heads are the solo ones (:mod:`ppo_pipeline.algo.distributions`): the same distribution classes,
the same ``mode``, the same ``draw`` -- here with member p's own random generator, so a member's stream does not
depend on P.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, TypeAlias, cast

import torch
from tensordict import TensorDictBase
from torch import nn

from .. import batch as keys
from ..algo import distributions
from ..algo.kinds import MASK_KEY
from ..algo.policy import Agent
from .stacked import load_member_state, member_state, stack

Obs: TypeAlias = torch.Tensor | TensorDictBase  # a Box's observations, or a Dict's entries


class PackAgent(nn.Module):
    """Stacked trunk, policy head and value net of P solo agents (parameter names as the solo agent's)."""

    recurrent = False  # packs stack feed-forward policies

    def __init__(self, agents: Sequence[Agent]):
        super().__init__()
        first = agents[0]
        self.members = len(agents)
        self.shared, self.pixels, self.param_keys = first.shared, first.pixels, first.param_keys
        self.masked = first.masked  # a Dict observation's action_mask entry masks the head (as the solo agent's)
        # registered in the solo Agent's order, so parameters() lines up with a solo optimizer's param ids
        self.trunk = stack([a.trunk for a in agents])
        self.value_net = stack([a.value_net for a in agents])
        head = stack([a.policy_head for a in agents])
        assert isinstance(head, distributions.Head)  # a head's net is Linear layers: stack keeps the head's class
        self.policy_head = head
        self.template = [copy.deepcopy(first).cpu()]  # a solo agent to turn member slices back into (not a child)

    def features(self, obs: Obs) -> torch.Tensor:
        """What the heads read: the shared trunk's output, or the observations ([P, B, ...])."""
        return self.trunk(obs) if self.shared else obs

    def params(self, obs: Obs, x: torch.Tensor | None = None) -> distributions.Params:
        """The distribution's parameters of every member on ``obs`` [P, B, ...] (``x``: its :meth:`features`, when
        computed already); a masked head also reads the observations' ``action_mask`` entry, as the solo agent's."""
        x = self.features(obs) if x is None else x
        if not self.masked:
            return self.policy_head(x)
        return self.policy_head(x, cast(TensorDictBase, obs)[MASK_KEY])  # a mask comes in a Dict observation

    def dist(self, params: distributions.Params) -> torch.distributions.Distribution:
        return distributions.build(self.policy_head, params)

    def rollout_noise(self, steps: int, envs: int, generators: Sequence[torch.Generator]) -> torch.Tensor | None:
        """Member p's N(0, I) draws for a whole rollout over its ``envs`` envs, from ``generators[p]`` at once:
        [T, P x E, A] (a Gaussian head; one call per member and rollout instead of one per member and step)."""
        if not isinstance(self.policy_head, distributions.GaussianHead):
            return None
        return distributions.gaussian_noise(self.policy_head, steps, envs, generators)

    def initial_state(self, batch: int, device: object = "cpu") -> None:
        """No recurrent state (packs stack feed-forward policies)."""
        return

    def _members(self, x: Obs) -> Obs:
        """[P x E, ...] (member-major, as the collector holds envs) -> [P, E, ...] (a TensorDict: its batch dims)."""
        return x.reshape(self.members, -1, *x.shape[1:])

    @torch.no_grad()
    def act(
        self,
        obs: Obs,
        deterministic: bool = False,
        state: None = None,
        generators: Sequence[torch.Generator | None] | None = None,
        noise: torch.Tensor | None = None,
        rows: Any = None,
    ) -> dict[str, torch.Tensor]:
        """The solo :meth:`Agent.act <ppo_pipeline.algo.policy.Agent.act>` of every member on its own envs: obs
        [P x E, *obs] (member-major; a ``Dict`` space's: a TensorDict [P x E] of its entries) -> ``action``
        [P x E(, A)], ``action_log_prob`` [P x E], ``state_value`` [P x E, 1] and the parameters. Member p samples
        with ``generators[p]``, or from ``noise`` [P x E, A] (this step's slice of :meth:`rollout_noise`), or takes
        the mode. ``rows``: this rank's envs of each member's over W ranks (:func:`~ppo_pipeline.algo.distributions.draw`)."""
        obs = self._members(obs)
        x = self.features(obs)
        params = self.params(obs, x)
        if deterministic:
            action = self.policy_head.mode(params)
        elif noise is not None:
            assert isinstance(self.policy_head, distributions.GaussianHead)  # noise is a Gaussian's (rollout_noise)
            action = self.policy_head.draw(params, noise=self._members(noise))
        else:
            action = torch.stack(
                [
                    distributions.draw(self.policy_head, {k: v[p] for k, v in params.items()}, g, rows)
                    for p, g in enumerate(generators or [None] * self.members)
                ]
            )
        log_prob = self.dist(params).log_prob(action)
        out = {keys.ACTION: action, keys.ACTION_LOG_PROB: log_prob, keys.STATE_VALUE: self.value_net(x), **params}
        return {k: v.reshape(-1, *v.shape[2:]) for k, v in out.items()}

    def sample(self, obs: Obs, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`act` of a Gaussian head from this step's ``noise``: tensors only, so the collector can compile it
        (call it under ``torch.no_grad``)."""
        return self.act(obs, noise=noise)

    @torch.no_grad()
    def state_value(self, obs: Obs, state: None = None) -> torch.Tensor:
        """V(s) [P x E, 1] of every member on its own envs' observations [P x E, *obs]."""
        return self.value_net(self.features(self._members(obs))).reshape(-1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def load_member(self, p: int, state: dict[str, torch.Tensor]) -> None:
        """Write member p's solo ``state`` (an :class:`Agent`'s state_dict) into its slice, in place."""
        for name in ("trunk", "value_net", "policy_head"):
            load_member_state(
                getattr(self, name), p, {k[len(name) + 1 :]: v for k, v in state.items() if k.startswith(name + ".")}
            )

    def member_agent(self, p: int) -> Agent:
        """Member p as a solo :class:`Agent` (a copy on the CPU, for its checkpoint, evaluation tools, tests)."""
        agent = copy.deepcopy(self.template[0])
        for name in ("trunk", "value_net", "policy_head"):
            getattr(agent, name).load_state_dict(member_state(getattr(self, name), p))
        return agent
