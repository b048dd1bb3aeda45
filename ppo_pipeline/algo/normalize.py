"""Observation normalization and reward scaling for continuous control (numpy, batched over envs).

The continuous-control details of "The 37 Implementation Details of PPO": observations normalized by
running statistics and clipped, rewards divided by the running std of the discounted return and
clipped. The collector applies them (not env wrappers), so that the final observation of a truncated
episode is normalized too, which the bootstrap V(s_T) needs. Evaluation observes through a frozen copy
of the training statistics; checkpoints keep them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd

from .ranks import ONE, Ranks


def standardize(x, mean, var, eps: float, clip: float):
    """``clip((x - mean) / sqrt(var + eps), -clip, clip)``: the observation normalization, written once for
    numpy arrays (the collector) and torch tensors (the exported policy)."""
    return ((x - mean) / (var + eps) ** 0.5).clip(-clip, clip)


def update_rms(rms: RunningMeanStd, x: np.ndarray, axis: int = 0, ranks: Ranks = ONE) -> None:
    """``rms.update(x)`` over the batch ``axis`` (1 when statistics are kept per pack member, axis 0); a
    batch of one skips numpy's mean/var reductions (its mean is the sample, its variance 0: the same
    numbers, a few times cheaper, for the one-env MuJoCo preset's every step). Over W ranks the batch is every
    rank's rows: the moments are combined (:meth:`ppo_pipeline.algo.ranks.Ranks.moments`) before the update."""
    var: Any
    if x.shape[axis] == 1:
        mean, var, n = np.take(x, 0, axis=axis), 0.0, 1
    else:
        mean, var, n = x.mean(axis=axis), x.var(axis=axis), x.shape[axis]
    if ranks.many:
        mean, var, n = ranks.moments(mean, np.broadcast_to(var, np.shape(mean)), n)
    rms.update_from_moments(mean, var, n)


class PerUpdate:
    """Running statistics over ranks combined once per update (``--rank-stats update``, as baselines' MPI code):
    during an update each rank's statistics move with its own envs (no collective per step); :meth:`sync` then puts
    every rank's at the update's start, moved by the moments of every rank's rows of the update (one all-gather),
    so the ranks hold the same statistics again. Not the one-process run's: its statistics move at every step."""

    def __init__(self, ranks: Ranks):
        self.ranks = ranks
        self.base: tuple[Any, Any, Any] | None = None
        self.n, self.mean, self.m2 = 0, np.zeros(()), np.zeros(())

    def update(self, rms: RunningMeanStd, x: np.ndarray, axis: int) -> None:
        if self.base is None:
            self.base = (np.copy(rms.mean), np.copy(rms.var), rms.count)
        mean, var, n = x.mean(axis=axis).astype(np.float64), x.var(axis=axis).astype(np.float64), x.shape[axis]
        if self.n == 0:
            self.n, self.mean, self.m2 = n, mean, var * n
        else:  # Chan et al.'s combination of this step's moments with the update's so far
            total, delta = self.n + n, mean - self.mean
            self.mean = self.mean + delta * n / total
            self.m2 = self.m2 + var * n + delta**2 * self.n * n / total
            self.n = total
        update_rms(rms, x, axis)  # this rank's statistics move with its own envs until the sync

    def sync(self, rms: RunningMeanStd) -> None:
        if self.base is None:
            return
        mean, var, n = self.ranks.moments(self.mean, self.m2 / self.n, self.n)
        rms.mean, rms.var, rms.count = self.base
        rms.update_from_moments(mean, var, n)
        self.base, self.n = None, 0


class ObsNormalizer:
    """o' = clip((o - mean) / sqrt(var + eps), -clip, clip), statistics from gymnasium's RunningMeanStd.

    Observations ``[E, *shape]``; with ``members=P`` (a pack) ``[P, E, *shape]`` and statistics per member
    (``[P, *shape]``), each moving exactly as its solo run's would. ``frozen`` stops the statistics from
    moving: evaluation envs use a frozen copy of training's.
    """

    def __init__(
        self, shape: tuple[int, ...], clip: float, eps: float = 1e-8, members: int | None = None, ranks: Ranks = ONE
    ):
        self.members, self.ranks = members, ranks
        self.rms = RunningMeanStd(shape=tuple(shape) if members is None else (members, *shape))
        self.clip, self.eps, self.frozen = clip, eps, False
        self.per_update = PerUpdate(ranks) if ranks.per_update_stats else None

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        axis = 0 if self.members is None else 1
        if update and not self.frozen:
            if self.per_update is not None:
                self.per_update.update(self.rms, obs, axis)
            else:
                update_rms(self.rms, obs, axis, self.ranks)
        mean, var = (self.rms.mean, self.rms.var) if axis == 0 else (self.rms.mean[:, None], self.rms.var[:, None])
        return standardize(obs, mean, var, self.eps, self.clip).astype(np.float32)

    def sync(self) -> None:
        """Over ranks with ``--rank-stats update``: every rank's statistics combined (:class:`PerUpdate`)."""
        if self.per_update is not None:
            self.per_update.sync(self.rms)

    def frozen_copy(self) -> ObsNormalizer:
        shape = self.rms.mean.shape if self.members is None else self.rms.mean.shape[1:]
        other = ObsNormalizer(shape, self.clip, self.eps, self.members)
        other.load_state_dict(self.state_dict())
        other.frozen = True
        return other

    def state_dict(self) -> dict:
        return {"mean": self.rms.mean.copy(), "var": self.rms.var.copy(), "count": self.rms.count}

    def load_state_dict(self, d: dict) -> None:
        self.rms.mean, self.rms.var, self.rms.count = d["mean"].copy(), d["var"].copy(), d["count"]


class RewardScaler:
    """r' = clip(r / sqrt(Var[R] + eps), -clip, clip) with R the running discounted return per env.

    R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t, as in gymnasium's NormalizeReward. Rewards ``[E]``; with
    ``members=P`` ``[P, E]`` and one return statistic per member.
    """

    def __init__(
        self,
        num_envs: int,
        gamma: float,
        clip: float,
        eps: float = 1e-8,
        members: int | None = None,
        ranks: Ranks = ONE,
    ):
        self.members, self.ranks = members, ranks
        self.rms = RunningMeanStd(shape=() if members is None else (members,))
        self.ret = np.zeros(num_envs if members is None else (members, num_envs))
        self.gamma, self.clip, self.eps = gamma, clip, eps
        self.per_update = PerUpdate(ranks) if ranks.per_update_stats else None

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        if self.per_update is not None:
            self.per_update.update(self.rms, self.ret, 0)
        else:
            update_rms(self.rms, self.ret, 0 if self.members is None else 1, self.ranks)
        var = self.rms.var if self.members is None else self.rms.var[:, None]
        out = reward / np.sqrt(var + self.eps)
        self.ret[done] = 0.0
        return np.clip(out, -self.clip, self.clip)

    def sync(self) -> None:
        """Over ranks with ``--rank-stats update``: every rank's return statistics combined (:class:`PerUpdate`)."""
        if self.per_update is not None:
            self.per_update.sync(self.rms)

    def state_dict(self) -> dict:
        return {"mean": self.rms.mean, "var": self.rms.var, "count": self.rms.count, "ret": self.ret.copy()}

    def load_state_dict(self, d: dict) -> None:
        self.rms.mean, self.rms.var, self.rms.count, self.ret = d["mean"], d["var"], d["count"], d["ret"].copy()


class DictObsNormalizer:
    """:class:`ObsNormalizer` per vector entry of a ``Dict`` observation (images and the action mask pass as
    they are): ``{key: array}`` in, ``{key: array}`` out, the same interface."""

    def __init__(self, space: Any, clip: float, eps: float = 1e-8, members: int | None = None, ranks: Ranks = ONE):
        from .kinds import MASK_KEY, is_image

        self.keys = [k for k, s in space.spaces.items() if k != MASK_KEY and not is_image(s)]
        self.norms = {k: ObsNormalizer(space[k].shape, clip, eps, members, ranks) for k in self.keys}
        self.clip, self.eps, self.members, self._space = clip, eps, members, space

    @property
    def frozen(self) -> bool:
        return all(n.frozen for n in self.norms.values())

    def __call__(self, obs: dict[str, np.ndarray], update: bool = True) -> dict[str, np.ndarray]:
        return {k: self.norms[k](v, update) if k in self.norms else v for k, v in obs.items()}

    def sync(self) -> None:
        for n in self.norms.values():
            n.sync()

    def frozen_copy(self) -> DictObsNormalizer:
        other = DictObsNormalizer(self._space, self.clip, self.eps, self.members)
        other.norms = {k: n.frozen_copy() for k, n in self.norms.items()}
        return other

    def state_dict(self) -> dict:
        return {k: n.state_dict() for k, n in self.norms.items()}

    def load_state_dict(self, d: dict) -> None:
        for k, n in self.norms.items():
            n.load_state_dict(d[k])


def make_obs_normalizer(
    space: Any, clip: float, members: int | None = None, ranks: Ranks = ONE
) -> ObsNormalizer | DictObsNormalizer:
    """The observation normalizer for ``space`` (a ``Box``, or a ``Dict`` of entries); over ``ranks``, statistics of
    every rank's envs."""
    import gymnasium as gym

    if isinstance(space, gym.spaces.Dict):
        return DictObsNormalizer(space, clip, members=members, ranks=ranks)
    return ObsNormalizer(space.shape, clip, members=members, ranks=ranks)


def normalize_members(obs_norm: Any, obs: Any, members: int, update: bool = True) -> Any:
    """``obs_norm`` on a batch of P members' envs, member-major ``[P x E, ...]`` (a ``Dict``'s dict of such arrays):
    each member's rows through its own statistics (``members=P``, axis ``[P, E, ...]``); P = 1 as it is."""
    if members == 1:
        return obs_norm(obs, update)

    def each(fn: Any, x: Any) -> Any:
        return {k: fn(v) for k, v in x.items()} if isinstance(x, dict) else fn(x)

    split = each(lambda x: x.reshape(members, -1, *x.shape[1:]), obs)
    return each(lambda x: x.reshape(-1, *x.shape[2:]), obs_norm(split, update))
