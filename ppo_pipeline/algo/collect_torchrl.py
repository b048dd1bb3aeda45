"""``--collector torchrl``: torchrl's ``Collector`` (``MultiSyncCollector`` with ``--collector-workers N``)
stepping the same envs with the same policy sampling, emitting the batch of the lean collector
(:mod:`ppo_pipeline.algo.collect`; same keys, shapes, bootstrap and raw action sample). torchrl 0.14 names
them ``Collector`` / ``MultiSyncCollector`` (formerly ``SyncDataCollector`` / ``MultiSyncDataCollector``).

Two pieces:

* :class:`ContractEnv`, a torchrl ``EnvBase`` over any env of the batched-env contract
  (:mod:`ppo_pipeline.envs`): it applies our normalization (the same objects as the lean collector, so
  checkpoints and frozen evaluation are unchanged), clips Box actions when sending them (the batch keeps
  the raw sample), and turns ``SAME_STEP`` autoreset back into torchrl's semantics: the ``"next"``
  observation of an ended episode is its final one (normalized without updating the statistics), the
  reset observation comes from ``_reset``. Finished episodes travel in the data as
  ``("next", "episode_return" | "episode_length" | "episode_end")``, so workers report them too.
* :class:`TorchRLCollector`, the trainer-facing object with the lean collector's interface (``reset``,
  ``collect``, ``global_step``, ``episodes``, timings), which turns torchrl's output into the contract:

``observation``, ``action``, ``action_log_prob``, ``state_value`` [.., 1], ``logits`` or ``loc``/``scale``;
``("next", "reward" | "done" | "terminated" | "truncated")`` [.., 1] and ``("next", "state_value")`` =
V(s_{t+1}) from :func:`ppo_pipeline.algo.advantages.next_state_value`, V(final observation) where a time limit cut.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
import time
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule
from torch import nn

from .. import batch as keys
from .. import workarounds
from .advantages import next_state_value
from .collect import EpisodeLog, episode_stats
from .normalize import ObsNormalizer, RewardScaler
from .policy import Agent
from .spaces import env_action

with workarounds.distribution_default_kept():  # torchrl's import turns it off process-wide (workaround 6)
    from torchrl.data import Categorical, Composite, Unbounded
    from torchrl.envs import EnvBase


class ContractEnv(EnvBase):
    """A batched env of our contract as a torchrl ``EnvBase`` of batch size ``[num_envs]`` (CPU)."""

    def __init__(
        self,
        envs: Any,
        seeds: list[int],
        *,
        obs_norm: ObsNormalizer | None = None,
        reward_scaler: RewardScaler | None = None,
    ):
        n = envs.num_envs
        super().__init__(batch_size=torch.Size([n]), device="cpu")
        self.envs, self.seeds, self.obs_norm, self.reward_scaler = envs, list(seeds), obs_norm, reward_scaler
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        obs_dtype = torch.uint8 if obs_space.dtype == np.uint8 else torch.float32
        self.observation_spec = Composite(
            observation=Unbounded(shape=(n, *obs_space.shape), dtype=obs_dtype),
            episode_return=Unbounded(shape=(n,), dtype=torch.float64),
            episode_length=Unbounded(shape=(n,), dtype=torch.int64),
            episode_end=Categorical(2, shape=(n,), dtype=torch.bool),
            shape=(n,),
        )
        if isinstance(act_space, gym.spaces.Discrete):
            self.action_spec = Categorical(int(act_space.n), shape=(n,), dtype=torch.int64)
        else:
            self.action_spec = Unbounded(shape=(n, *act_space.shape), dtype=torch.float32)
        self.reward_spec = Unbounded(shape=(n, 1), dtype=torch.float32)
        self.full_done_spec = Composite(
            done=Categorical(2, shape=(n, 1), dtype=torch.bool),
            terminated=Categorical(2, shape=(n, 1), dtype=torch.bool),
            truncated=Categorical(2, shape=(n, 1), dtype=torch.bool),
            shape=(n,),
        )
        self._after_reset: np.ndarray | None = None  # the autoreset observations of the last step (normalized)

    def _norm(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        return self.obs_norm(obs, update) if self.obs_norm is not None else obs

    def _td(self, obs: np.ndarray, **extra: Any) -> TensorDict:
        n = self.envs.num_envs
        out = {
            keys.OBSERVATION: torch.from_numpy(np.ascontiguousarray(obs)),
            "episode_return": torch.zeros(n, dtype=torch.float64),
            "episode_length": torch.zeros(n, dtype=torch.int64),
            "episode_end": torch.zeros(n, dtype=torch.bool),
            **extra,
        }
        return TensorDict(out, batch_size=self.batch_size)

    def _reset(self, tensordict: TensorDictBase | None = None, **kwargs: Any) -> TensorDictBase:
        n = self.envs.num_envs
        partial = tensordict is not None and "_reset" in tensordict.keys() and self._after_reset is not None
        if not partial:  # the first reset: the seeded one
            obs, _ = self.envs.reset(seed=self.seeds)
            self._after_reset = self._norm(obs)
        assert self._after_reset is not None  # just set, or (a partial reset) set by the last step
        done = torch.zeros(n, 1, dtype=torch.bool)
        return self._td(self._after_reset, done=done, terminated=done.clone(), truncated=done.clone())

    def _step(self, tensordict: TensorDictBase) -> TensorDictBase:
        n = self.envs.num_envs
        action = env_action(tensordict[keys.ACTION], self.envs.single_action_space)
        next_obs, r, term, trunc, info = self.envs.step(action)
        ep_ret, ep_len, ep_end = np.zeros(n), np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool)
        for i, ret, length in episode_stats(info):
            ep_ret[i], ep_len[i], ep_end[i] = ret, length, True
        done = term | trunc
        if self.reward_scaler is not None:
            r = self.reward_scaler(r, done)
        ended = np.flatnonzero(done)
        # the final observations first, without updating the statistics (the lean collector's order)
        final = self._norm(np.stack([info["final_obs"][i] for i in ended]), update=False) if len(ended) else None
        self._after_reset = self._norm(next_obs)
        obs = self._after_reset.copy()
        if final is not None:
            obs[ended] = final
        out = self._td(
            obs,
            reward=torch.as_tensor(np.asarray(r, dtype=np.float32)).reshape(n, 1),
            done=torch.from_numpy(done).reshape(n, 1),
            terminated=torch.from_numpy(term).reshape(n, 1),
            truncated=torch.from_numpy(trunc).reshape(n, 1),
        )
        out["episode_return"] = torch.from_numpy(ep_ret)
        out["episode_length"] = torch.from_numpy(ep_len)
        out["episode_end"] = torch.from_numpy(ep_end)
        return out

    def _set_seed(self, seed: int | None) -> None:
        if seed is not None:
            self.seeds = [seed + i for i in range(self.envs.num_envs)]

    def close(self, *, raise_if_closed: bool = True) -> None:
        self.envs.close()
        super().close(raise_if_closed=False)


class AgentPolicy(nn.Module):
    """The agent's sampling, ``agent.act`` (the trainer's compiled fast path where it set one), as a module
    for torchrl's collectors: ``observation`` -> action, action_log_prob, state_value, dist params."""

    def __init__(self, agent: Agent):
        super().__init__()
        self.agent = agent
        self.time = 0.0
        self.generators: list[torch.Generator | None] | None = None  # the run's own (lean collector's) draws
        self.noise: list[torch.Tensor] = []  # a Gaussian's draws of this rollout, one per step (as the lean one)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        t0 = time.perf_counter()
        out = self.agent.act(obs, generators=self.generators, noise=self.noise.pop(0) if self.noise else None)
        self.time += time.perf_counter() - t0
        return tuple(out[k] for k in self.out_keys(self.agent))

    @staticmethod
    def out_keys(agent: Agent) -> list[str]:
        return [keys.ACTION, keys.ACTION_LOG_PROB, keys.STATE_VALUE, *agent.param_keys]


def policy_module(agent: Agent) -> TensorDictModule:
    return TensorDictModule(AgentPolicy(agent), in_keys=[keys.OBSERVATION], out_keys=AgentPolicy.out_keys(agent))


def _worker_env(make_envs: Callable[[int], Any], n: int, seeds: list[int]) -> ContractEnv:
    """One MultiSyncCollector worker's env: ``make_envs(n)`` seeded with ``seeds`` (no normalization). In the
    worker, a process that only runs the package, workarounds 1, 3 and 12 stay in place (the policy runs there)."""
    if multiprocessing.parent_process() is not None:
        workarounds.apply()
    return ContractEnv(make_envs(n), seeds)


class TorchRLCollector:
    """Collect T steps from each env with torchrl's collectors; the lean :class:`~ppo_pipeline.algo.collect.Collector`'s
    interface and output.

    ``workers == 1``: torchrl's ``Collector`` over one :class:`ContractEnv` around ``envs`` (in this
    process, with the run's normalization). ``workers > 1``: ``MultiSyncCollector``, each worker stepping
    ``num_envs / workers`` envs built by ``make_envs(n)`` (normalization is refused there by the config:
    its statistics would live in the workers); the policy weights are sent to the workers before each batch.
    """

    exact_resume = False  # the env state is not snapshotted: a resume restarts episodes (as subprocess envs)
    state = None  # no LSTM state to carry (--policy lstm needs the lean collector)
    is_init = None

    def __init__(
        self,
        envs: Any,
        agent: Agent,
        num_steps: int,
        device: torch.device,
        *,
        generators: Sequence[torch.Generator | None] = (),
        obs_norm: ObsNormalizer | None = None,
        reward_scaler: RewardScaler | None = None,
        workers: int = 1,
        make_envs: Callable[[int], Any] | None = None,
    ):
        self.envs, self.agent, self.T, self.device = envs, agent, num_steps, torch.device(device)
        self.obs_norm, self.reward_scaler, self.workers, self.make_envs = obs_norm, reward_scaler, workers, make_envs
        self.generators = list(generators) or [None]
        self.policy = policy_module(agent)
        self.policy.module.generators = self.generators
        self.global_step = 0
        self.time_env = 0.0
        self.time_policy = 0.0
        self.episodes = [EpisodeLog()]  # one member (the lean collector keeps one log per member)
        self.obs: np.ndarray | None = None  # (checkpoint field of the lean collector; unused here)
        self._collector: Any = None
        self._iter: Any = None

    def reset(self, seeds: list[int]) -> None:
        workarounds.quiet_torchrl_collectors()  # workaround 8: torchrl's collectors warn about themselves on import
        with workarounds.distribution_default_kept():  # workaround 6
            from torchrl.collectors import Collector, MultiSyncCollector

        if self.workers > 1:
            self.shutdown()
        E, T = self.envs.num_envs, self.T
        if self.workers == 1:
            env = ContractEnv(self.envs, seeds, obs_norm=self.obs_norm, reward_scaler=self.reward_scaler)
            self._collector = Collector(
                env,
                self.policy,
                frames_per_batch=E * T,
                total_frames=-1,
                env_device="cpu",
                policy_device=self.device,
                storing_device=self.device,
                trust_policy=True,
                track_traj_ids=False,
                auto_register_policy_transforms=False,
            )
        else:
            self.envs.close()  # the workers build their own
            per = E // self.workers
            assert self.make_envs is not None
            worker_agent = copy.deepcopy(self.agent)
            worker_agent.__dict__.pop("act", None)  # the eager act (a compiled one does not pickle)
            self.policy = policy_module(worker_agent)  # (draws from each worker's global generator)
            makers = [
                functools.partial(_worker_env, self.make_envs, per, seeds[w * per : (w + 1) * per])
                for w in range(self.workers)
            ]
            # use_buffers: what MultiSyncCollector assumes when it is not given, logging a warning on every batch
            self._collector = MultiSyncCollector(
                makers,
                self.policy,
                frames_per_batch=E * T,
                total_frames=-1,
                env_device="cpu",
                policy_device="cpu",
                storing_device=self.device,
                cat_results=0,
                use_buffers=True,
                trust_policy=True,
                auto_register_policy_transforms=False,
            )
        self._iter = iter(self._collector)

    @torch.no_grad()
    def collect(self) -> TensorDict:
        E, T, dev = self.envs.num_envs, self.T, self.device
        t0 = time.perf_counter()
        policy_t0 = self.policy.module.time
        if self.workers > 1:  # this update's weights to the workers (their draws are their own)
            self.policy.module.agent.load_state_dict(self.agent.state_dict())
            self._collector.update_policy_weights_()
        else:  # the lean collector's draws: a Gaussian's noise for the rollout at its start
            noise = self.agent.rollout_noise(T, E, self.generators)
            self.policy.module.noise = list(noise.unbind(0)) if noise is not None else []
        batch = next(self._iter)
        wall = time.perf_counter() - t0
        policy_s = self.policy.module.time - policy_t0
        self.time_policy += policy_s
        self.time_env += wall - policy_s
        if batch.batch_size != torch.Size([E, T]):  # envs first, time last, as the lean collector
            raise RuntimeError(f"torchrl's collector returned a batch of {list(batch.batch_size)}, not [{E}, {T}]")
        batch = batch.to(dev)
        nxt = batch[keys.NEXT]
        # finished episodes, in the lean collector's order: by step, then by env
        end = nxt["episode_end"].transpose(0, 1).cpu().numpy()
        ret, length = (nxt[k].transpose(0, 1).cpu().numpy() for k in ("episode_return", "episode_length"))
        for t, i in zip(*np.nonzero(end)):
            self.episodes[0].add(self.global_step + (int(t) + 1) * E, float(ret[t, i]), int(length[t, i]))
        self.global_step += E * T
        value = batch[keys.STATE_VALUE].transpose(0, 1)  # [T, E, 1]
        term, trunc = nxt[keys.TERMINATED].transpose(0, 1), nxt[keys.TRUNCATED].transpose(0, 1)
        next_obs = nxt[keys.OBSERVATION].transpose(0, 1)
        final_value = torch.zeros_like(value)
        boot = trunc & ~term  # a time limit cut: V(final obs)
        if boot.any():
            idx = boot.squeeze(-1).nonzero(as_tuple=True)
            final_value[idx] = self.agent.state_value(next_obs[idx])
        last_value = self.agent.state_value(next_obs[-1])  # V(s_T); replaced where the last step ended
        nv = next_state_value(value, last_value, final_value, term, trunc).transpose(0, 1)
        keep = [keys.OBSERVATION, *AgentPolicy.out_keys(self.agent)]
        td = {k: batch[k] for k in keep}
        td[keys.NEXT] = {
            keys.REWARD: nxt[keys.REWARD],
            keys.TERMINATED: nxt[keys.TERMINATED],
            keys.TRUNCATED: nxt[keys.TRUNCATED],
            keys.DONE: nxt[keys.TERMINATED] | nxt[keys.TRUNCATED],
            keys.STATE_VALUE: nv,
        }
        return TensorDict(td, batch_size=[E, T], device=dev)

    def shutdown(self) -> None:
        if self._collector is not None:
            self._collector.shutdown()
            self._collector = None
