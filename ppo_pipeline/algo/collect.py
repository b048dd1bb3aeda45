"""The collector: a gymnasium vector env stepped with the agent's fast path, batched into a TensorDict.

Why not torchrl's ``Collector``: per step it builds TensorDicts and runs the transform machinery,
which costs more than the env step itself on small envs (``python -m ppo_pipeline.bench
--collectors`` measures both on your machine). Here the per-step work is one batched forward pass
over all envs on plain tensors and one ``VectorEnv.step``; TensorDicts are made once per batch, where
they cost nothing. The output is what torchrl's collectors emit, so torchrl's GAE and losses consume
it unchanged.

Output of :meth:`Collector.collect`, a TensorDict of batch shape [num_envs, T] (time last):

``observation``, ``action`` (raw sample, before clipping to the bounds), ``action_log_prob``,
``state_value`` [.., 1], the distribution parameters (``logits`` or ``loc``/``scale``), and under
``"next"``: ``reward`` [.., 1] (the training reward: sign-clipped or scaled), ``done``, ``terminated``,
``truncated`` [.., 1] bool, ``state_value`` [.., 1] = V(s_{t+1}), the bootstrap of
:func:`ppo_pipeline.algo.advantages.next_state_value`.

With ``--policy lstm`` also ``is_init`` [.., 1] and the LSTM's state before each step
(``recurrent_state_h``/``_c``, zero where an episode starts): the collector carries each env's state from
step to step (and from batch to batch), which is what the loss replays. For a ``Dict`` observation space
``observation`` is a TensorDict of its entries. All keys: :mod:`ppo_pipeline.batch`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict

from .. import batch as keys
from ..threads import torch_threads
from . import compiling
from .advantages import next_state_value
from .normalize import DictObsNormalizer, ObsNormalizer, RewardScaler, normalize_members
from .ranks import ONE, Ranks
from .spaces import env_action, obs_tensor, stack_obs, with_rows


@dataclass
class EpisodeLog:
    """Finished real episodes: (global step at the end, return, length), raw env reward."""

    steps: list = field(default_factory=list)
    returns: list = field(default_factory=list)
    lengths: list = field(default_factory=list)

    def add(self, step: int, ret: float, length: int) -> None:
        self.steps.append(step)
        self.returns.append(ret)
        self.lengths.append(length)


def episode_stats(info: dict) -> list[tuple[int, float, int]]:
    """(env index, return, length) of the episodes that ended in this vector step (SAME_STEP autoreset)."""
    final = info.get("final_info")
    if not final or "episode" not in final:
        return []
    ep, mask = final["episode"], final["_episode"]
    return [(int(i), float(ep["r"][i]), int(ep["l"][i])) for i in np.flatnonzero(mask)]


class Collector:
    """Collect T steps from each of the ``members x E`` envs of ``envs`` with ``agent.act``.

    ``members`` (P) runs share the batched env, member-major: env i is member ``i // E``'s env ``i % E``, each
    seeded as its member's run seeds it (a solo run is P = 1). Per step: each member's observations through its
    own normalizer (statistics per member, :mod:`.normalize`), one ``agent.act`` for every env (member p samples
    with ``generators[p]``: a Gaussian member's noise for the whole rollout is drawn at its start), the env step,
    each member's rewards through its own scaler, the V(final obs) bootstrap where a time limit cut an episode,
    and each member's episode statistics (:attr:`episodes`, one log per member). ``collect_threads``: torch
    threads while collecting (a pack's per-step policy call is small: one thread, :mod:`ppo_pipeline.threads`);
    None keeps the run's. ``ranks``: a run over W processes, ``envs`` this rank's share (:mod:`.ranks`): its actions
    drawn as the one-process run draws them for all envs, :attr:`global_step` counting every rank's steps.
    """

    exact_resume = True  # a checkpoint may snapshot the envs (in-process ones) for a bit-exact resume

    def __init__(
        self,
        envs: gym.vector.VectorEnv,
        agent: Any,
        num_steps: int,
        device: torch.device,
        *,
        members: int = 1,
        generators: Sequence[torch.Generator | None] = (),
        obs_norm: ObsNormalizer | DictObsNormalizer | None = None,
        reward_scaler: RewardScaler | None = None,
        compile: bool = False,
        collect_threads: int | None = None,
        ranks: Ranks = ONE,
    ):
        self.envs, self.agent, self.T, self.device = envs, agent, num_steps, torch.device(device)
        self.P, self.E = members, envs.num_envs // members
        self.ranks, self.rows = ranks, ranks.envs if ranks.many else None
        self.generators = list(generators) or [None] * members
        self.obs_norm, self.reward_scaler, self.collect_threads = obs_norm, reward_scaler, collect_threads
        # a Gaussian policy's per-step call from noise drawn ahead: tensors only, compiled by the update's rule
        self.sample = compiling.MaybeCompiled(agent.sample, compile, "policy step", dynamic=False)
        self.alive = np.ones(members, dtype=bool)  # members still training (a diverged one idles)
        self.obs: np.ndarray | dict[str, np.ndarray] | None = None
        self.global_step = 0  # agent steps of each member (every rank's)
        self.time_env = 0.0  # seconds in VectorEnv.step + normalization (for the bench's split)
        self.time_policy = 0.0  # seconds in the policy/value forward passes
        self.episodes = [EpisodeLog() for _ in range(members)]
        # --policy lstm: the LSTM's state the envs' episodes carry, and which envs just started an episode
        self.state = agent.initial_state(envs.num_envs, self.device)
        self.is_init = np.ones(envs.num_envs, dtype=bool)

    def reset(self, seeds: list[int]) -> None:
        obs, _ = self.envs.reset(seed=seeds)  # type: ignore[arg-type]  # stub: seed int; vector envs take a list
        self.obs = self._norm(obs)
        self.is_init[:] = True

    def shutdown(self) -> None:
        """Nothing to stop (the trainer closes the envs); torchrl's collectors stop their workers here."""

    def _norm(self, obs: Any, update: bool = True) -> Any:
        return obs if self.obs_norm is None else normalize_members(self.obs_norm, obs, self.P, update)

    def _scale(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        assert self.reward_scaler is not None  # called where the run scales rewards
        if self.P == 1:
            return self.reward_scaler(reward, done)
        return self.reward_scaler(reward.reshape(self.P, self.E), done.reshape(self.P, self.E)).reshape(-1)

    def _fresh_state(self) -> dict[str, torch.Tensor] | None:
        """The carried LSTM state, zero where an episode starts (torchrl's is_init rule)."""
        if self.state is None:
            return None
        init = torch.from_numpy(self.is_init).to(self.device).view(-1, 1, 1)
        return {k: torch.where(init, torch.zeros_like(v), v) for k, v in self.state.items()}

    def _env_actions(self, action: torch.Tensor) -> np.ndarray:
        out = env_action(action, self.envs.single_action_space)
        if not self.alive.all():  # a diverged member's envs idle on a neutral action
            out[np.repeat(~self.alive, self.E)] = 0
        return out

    def collect(self) -> TensorDict:
        """T steps of every env: a TensorDict [P x E, T] (member-major envs, time last; keys: :mod:`ppo_pipeline.batch`)."""
        with torch_threads(self.collect_threads):
            return self._collect()

    @torch.no_grad()
    def _collect(self) -> TensorDict:
        N, T, dev = self.envs.num_envs, self.T, self.device
        assert self.obs is not None, "reset() the collector before collecting"
        obs_t = obs_tensor(self.obs, dev)
        buf: dict[str, Any] = {}
        final_value = torch.zeros(T, N, 1, device=dev)  # V(final observation) where a time limit cut
        reward_np = np.zeros((T, N, 1), dtype=np.float32)  # numpy per step, one tensor per batch
        terminated_np = np.zeros((T, N, 1), dtype=bool)
        truncated_np = np.zeros((T, N, 1), dtype=bool)
        clock = time.perf_counter
        t_start = clock()
        noise = self.agent.rollout_noise(T, self.E * self.ranks.world, self.generators)  # [T, N, A] (Gaussian)
        if noise is not None and self.rows is not None:  # each member's envs of this rank, of the one-process draws
            noise = self.rows.take(noise.unflatten(1, (self.P, -1)), 2).flatten(1, 2)
        policy_s = clock() - t_start
        for t in range(T):
            t0 = clock()
            state = self._fresh_state()
            if noise is not None and state is None:
                out = self.sample(obs_t, noise[t])
            else:
                out = self.agent.act(
                    obs_t,
                    state=state,
                    generators=self.generators,
                    noise=None if noise is None else noise[t],
                    **({"rows": self.rows} if self.rows is not None else {}),
                )
            out[keys.OBSERVATION] = obs_t
            if state is not None:  # the batch keeps the state before the step; the envs carry the one after
                self.state = {k: out.pop(f"next_{k}") for k in state}
                out.update(state)
                out[keys.IS_INIT] = torch.from_numpy(self.is_init.copy()).to(dev).unsqueeze(-1)
            if not buf:
                buf = {k: empty_like_steps(v, T) for k, v in out.items()}
            for k, v in out.items():
                buf[k][t] = v
            action = self._env_actions(out[keys.ACTION])
            t1 = clock()
            next_obs, r, term, trunc, info = self.envs.step(action)
            self.global_step += self.E * self.ranks.world
            for i, ret, length in episode_stats(info):
                self.episodes[i // self.E].add(self.global_step, ret, length)
            done = term | trunc
            if self.reward_scaler is not None:
                r = self._scale(r, done)
            reward_np[t, :, 0] = r
            terminated_np[t, :, 0] = term
            truncated_np[t, :, 0] = trunc
            boot = np.flatnonzero(trunc & ~term)
            if len(boot):  # bootstrap a time limit from V(final observation) (with the LSTM's state after the step)
                final = with_rows(next_obs, boot, stack_obs([info["final_obs"][i] for i in boot]))
                values = self.agent.state_value(obs_tensor(self._norm(final, update=False), dev), self.state)
                final_value[t, boot] = values[boot]
            self.obs = self._norm(next_obs)
            self.is_init = np.asarray(done, dtype=bool).copy()
            obs_t = obs_tensor(self.obs, dev)
            t2 = clock()
            policy_s += t1 - t0
            self.time_env += t2 - t1
        self.time_policy += policy_s
        if self.ranks.per_update_stats:  # --rank-stats update: every rank's statistics combined once, here
            for stats in (self.obs_norm, self.reward_scaler):
                if stats is not None:
                    stats.sync()
        reward, terminated, truncated = (torch.from_numpy(x).to(dev) for x in (reward_np, terminated_np, truncated_np))
        last_value = self.agent.state_value(obs_t, self._fresh_state())
        next_value = next_state_value(buf[keys.STATE_VALUE], last_value, final_value, terminated, truncated)
        done = terminated | truncated
        td = {k: v.transpose(0, 1) for k, v in buf.items()}
        td[keys.NEXT] = {
            keys.REWARD: reward.transpose(0, 1),
            keys.TERMINATED: terminated.transpose(0, 1),
            keys.TRUNCATED: truncated.transpose(0, 1),
            keys.DONE: done.transpose(0, 1),
            keys.STATE_VALUE: next_value.transpose(0, 1),
        }
        return TensorDict(td, batch_size=[N, T], device=dev)


def empty_like_steps(v: torch.Tensor | TensorDict, steps: int) -> torch.Tensor | TensorDict:
    """A buffer for ``steps`` values like ``v`` (a tensor, or a TensorDict of a ``Dict`` observation)."""
    if isinstance(v, TensorDict):
        return v.unsqueeze(0).expand(steps, *v.batch_size).clone()
    return torch.empty((steps, *v.shape), dtype=v.dtype, device=v.device)
