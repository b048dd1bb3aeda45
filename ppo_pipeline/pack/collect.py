"""The pack's collector: P members' envs stepped as one batched env, one policy call for all of them.

The batched env holds the P members' E envs each, member-major (env i is member ``i // E``'s env
``i % E``), each seeded as its member's solo run seeds it. Per step: every member's observations through
its own normalizer (:class:`~ppo_pipeline.algo.normalize.ObsNormalizer` with a member axis), one
:meth:`PackAgent.act` (member p samples with its own generator; a Gaussian member's noise for the
whole rollout is drawn at its start), the env step, each member's rewards
through its own scaler, the V(final obs) bootstrap where a time limit cut an episode, and each member's
episode statistics. Output: the solo collector's TensorDict with a leading member dimension, [P, E, T]
(time last: torchrl's GAE runs on it unchanged).
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np
import torch
from tensordict import TensorDict

from .. import batch as keys
from ..algo import compiling
from ..algo.advantages import next_state_value
from ..algo.collect import EpisodeLog, episode_stats
from ..algo.normalize import ObsNormalizer, RewardScaler
from ..algo.spaces import env_action, obs_tensor
from ..run.threads import torch_threads
from .agent import PackAgent

COLLECT_THREADS = 1     # torch threads while collecting (see run.threads.torch_threads); the update keeps the run's


class PackCollector:
    """T steps of each of the ``P x E`` envs of ``envs`` (member-major) with ``agent`` (a :class:`PackAgent`)."""

    exact_resume = True

    def __init__(self, envs: Any, agent: PackAgent, num_steps: int, device: torch.device, *,
                 generators: Sequence[torch.Generator], obs_norm: ObsNormalizer | None = None,
                 reward_scaler: RewardScaler | None = None, compile: bool = False):
        self.envs, self.agent, self.T, self.device = envs, agent, num_steps, torch.device(device)
        # a Gaussian pack's per-step policy call (PackAgent.sample), compiled by the pack's update rule
        self.sample = compiling.MaybeCompiled(agent.sample, compile, "pack policy step", dynamic=False)
        self.P = agent.members
        self.E = envs.num_envs // self.P
        self.generators = generators
        self.obs_norm, self.reward_scaler = obs_norm, reward_scaler
        self.alive = np.ones(self.P, dtype=bool)       # members still training (a diverged one idles)
        self.obs: np.ndarray | None = None             # [P, E, *obs], normalized
        self.global_step = 0                            # agent steps of each member
        self.time_env = 0.0
        self.time_policy = 0.0
        self.episodes = [EpisodeLog() for _ in range(self.P)]

    def _members(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(self.P, self.E, *x.shape[1:])

    def _norm(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        return self.obs_norm(obs, update) if self.obs_norm is not None else obs

    def reset(self, seeds: list[int]) -> None:
        obs, _ = self.envs.reset(seed=seeds)
        self.obs = self._norm(self._members(obs))

    def shutdown(self) -> None:
        """Nothing to stop (the trainer closes the envs)."""

    def _env_actions(self, action: torch.Tensor) -> np.ndarray:
        out = env_action(action.reshape(self.P * self.E, *action.shape[2:]), self.envs.single_action_space)
        if not self.alive.all():     # a diverged member's envs idle on a neutral action
            dead = np.repeat(~self.alive, self.E)
            out[dead] = 0
        return out

    def collect(self) -> TensorDict:
        with torch_threads(COLLECT_THREADS):
            return self._collect()

    @torch.no_grad()
    def _collect(self) -> TensorDict:
        P, E, T, dev = self.P, self.E, self.T, self.device
        obs_t = obs_tensor(self.obs, dev)
        buf: dict[str, torch.Tensor] = {}
        final_value = torch.zeros(T, P, E, 1, device=dev)
        reward = np.zeros((T, P, E, 1), dtype=np.float32)
        terminated = np.zeros((T, P, E, 1), dtype=bool)
        truncated = np.zeros((T, P, E, 1), dtype=bool)
        clock = time.perf_counter
        noise = self.agent.rollout_noise(T, E, self.generators)     # [T, P, E, A] (Gaussian), or None
        for t in range(T):
            t0 = clock()
            out = self.agent.act(obs_t, self.generators) if noise is None else self.sample(obs_t, noise[t])
            out[keys.OBSERVATION] = obs_t
            if not buf:
                buf = {k: torch.empty((T, *v.shape), dtype=v.dtype, device=dev) for k, v in out.items()}
            for k, v in out.items():
                buf[k][t] = v
            action = self._env_actions(out[keys.ACTION])
            t1 = clock()
            next_obs, r, term, trunc, info = self.envs.step(action)
            self.global_step += E
            for i, ret, length in episode_stats(info):
                self.episodes[i // E].add(self.global_step, ret, length)
            r, term, trunc = self._members(r), self._members(term), self._members(trunc)
            if self.reward_scaler is not None:
                r = self.reward_scaler(r, term | trunc)
            reward[t, ..., 0], terminated[t, ..., 0], truncated[t, ..., 0] = r, term, trunc
            boot = np.flatnonzero((trunc & ~term).reshape(-1))
            if len(boot):     # bootstrap a time limit from V(final observation), with the member's statistics
                final = np.zeros((P, E, *self.envs.single_observation_space.shape),
                                 dtype=self.envs.single_observation_space.dtype)
                for i in boot:
                    final[i // E, i % E] = info["final_obs"][i]
                values = self.agent.state_value(obs_tensor(self._norm(final, update=False), dev))
                for i in boot:
                    final_value[t, i // E, i % E] = values[i // E, i % E]
            self.obs = self._norm(self._members(next_obs))
            obs_t = obs_tensor(self.obs, dev)
            t2 = clock()
            self.time_policy += t1 - t0
            self.time_env += t2 - t1
        reward, terminated, truncated = (torch.from_numpy(x).to(dev) for x in (reward, terminated, truncated))
        next_value = next_state_value(buf[keys.STATE_VALUE], self.agent.state_value(obs_t), final_value,
                                      terminated, truncated)
        done = terminated | truncated
        td = {k: v.movedim(0, 2) for k, v in buf.items()}       # [T, P, E, ...] -> [P, E, T, ...]
        td[keys.NEXT] = {keys.REWARD: reward.movedim(0, 2), keys.TERMINATED: terminated.movedim(0, 2),
                         keys.TRUNCATED: truncated.movedim(0, 2), keys.DONE: done.movedim(0, 2),
                         keys.STATE_VALUE: next_value.movedim(0, 2)}
        return TensorDict(td, batch_size=[P, E, T], device=dev)
