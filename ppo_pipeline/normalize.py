"""Observation normalization and reward scaling for continuous control (numpy, batched over envs).

The continuous-control details of "The 37 Implementation Details of PPO": observations normalized by
running statistics and clipped, rewards divided by the running std of the discounted return and
clipped. The collector applies them (not env wrappers), so that the final observation of a truncated
episode is normalized too, which the bootstrap V(s_T) needs. Evaluation observes through a frozen copy
of the training statistics; checkpoints keep them.
"""

from __future__ import annotations

import numpy as np
from gymnasium.wrappers.utils import RunningMeanStd


def update_rms(rms: RunningMeanStd, x: np.ndarray) -> None:
    """``rms.update(x)``; a batch of one skips numpy's mean/var reductions (its mean is the sample, its
    variance 0: the same numbers, a few times cheaper, for the one-env MuJoCo preset's every step)."""
    if x.shape[0] == 1:
        rms.update_from_moments(x[0], 0.0, 1)
    else:
        rms.update(x)


class ObsNormalizer:
    """o' = clip((o - mean) / sqrt(var + eps), -clip, clip), statistics from gymnasium's RunningMeanStd.

    ``frozen`` stops the statistics from moving: evaluation envs use a frozen copy of training's.
    """

    def __init__(self, shape: tuple[int, ...], clip: float, eps: float = 1e-8):
        self.rms = RunningMeanStd(shape=shape)
        self.clip, self.eps, self.frozen = clip, eps, False

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update and not self.frozen:
            update_rms(self.rms, obs)
        out = (obs - self.rms.mean) / np.sqrt(self.rms.var + self.eps)
        return np.clip(out, -self.clip, self.clip).astype(np.float32)

    def frozen_copy(self) -> "ObsNormalizer":
        other = ObsNormalizer(self.rms.mean.shape, self.clip, self.eps)
        other.load_state_dict(self.state_dict())
        other.frozen = True
        return other

    def state_dict(self) -> dict:
        return {"mean": self.rms.mean.copy(), "var": self.rms.var.copy(), "count": self.rms.count}

    def load_state_dict(self, d: dict) -> None:
        self.rms.mean, self.rms.var, self.rms.count = d["mean"].copy(), d["var"].copy(), d["count"]


class RewardScaler:
    """r' = clip(r / sqrt(Var[R] + eps), -clip, clip) with R the running discounted return per env.

    R_t = gamma * R_{t-1} * (1 - done_{t-1}) + r_t, as in gymnasium's NormalizeReward.
    """

    def __init__(self, num_envs: int, gamma: float, clip: float, eps: float = 1e-8):
        self.rms = RunningMeanStd(shape=())
        self.ret = np.zeros(num_envs)
        self.gamma, self.clip, self.eps = gamma, clip, eps

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        update_rms(self.rms, self.ret)
        out = reward / np.sqrt(self.rms.var + self.eps)
        self.ret[done] = 0.0
        return np.clip(out, -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"mean": self.rms.mean, "var": self.rms.var, "count": self.rms.count, "ret": self.ret.copy()}

    def load_state_dict(self, d: dict) -> None:
        self.rms.mean, self.rms.var, self.rms.count, self.ret = d["mean"], d["var"], d["count"], d["ret"].copy()
