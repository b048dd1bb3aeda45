"""Environment stacks: the Atari and continuous-control details of "The 37 Implementation Details of PPO".

Why gymnasium wrappers and a vector env rather than torchrl transforms: measured on the 2-core
reference machine, torchrl's ``Collector`` over ``GymEnv("Hopper-v5")`` collects ~770 steps/s while
a plain gymnasium loop with the same network runs ~2,600, and a TensorDict actor call costs ~350 us
against ~40 us for the bare module. The env stack therefore stays in numpy (gymnasium's own
wrappers, batched by gymnasium's vector envs) and the collector (:mod:`ppo_pipeline.collect`) turns
whole batches into TensorDicts. See ``python -m ppo_pipeline.bench`` for the figures on your machine.

Atari stack, innermost first (each line one of the 9 Atari details):

1. ``gym.make(..., frameskip=1, repeat_action_probability=0)``: the paper's v4-style ALE (no sticky
   actions) so that frame skipping is ours.
2. ``AtariPreprocessing``: no-op reset (<= ``noop_max`` no-ops), frame skip 4 with a max over the last
   2 frames, 84x84 grayscale. It resizes with OpenCV (``cv2.resize``, INTER_AREA): torchrl's
   ``Resize`` needs torchvision, which has no CPU wheel here, and OpenCV's area filter is what
   DQN-era baselines used.
3. ``RecordEpisodeStatistics``: episode return/length of the *real game* (unclipped score, all lives).
4. :class:`EpisodicLife`: a lost life ends the *training* episode (terminated for GAE), without
   resetting the game.
5. :class:`FireReset`: press FIRE after reset in games that need it.
6. :class:`ClipRewardSign`: train on sign(r).
7. ``FrameStackObservation(4)``: observation ``uint8[4, 84, 84]``. Scaling to [0, 1] happens in the
   model's first layer so the batch stays uint8 (4x less memory).

Continuous control: observation normalization + clip, reward scaling by the running std of the
discounted return + clip (:class:`ObsNormalizer`, :class:`RewardScaler`, applied by the collector so
that the final observation of a truncated episode is normalized too, which the bootstrap needs),
and actions clipped to the bounds only when sent to the env (the collector stores the raw sample).
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.utils import RunningMeanStd

from .config import Config, ConfigError, suggest

# Seeds: env i of run seed s gets s * SEED_STRIDE + i (training) or s * SEED_STRIDE + EVAL_OFFSET + i
# (evaluation). Integer arithmetic, so two seeds of a sweep never share an env seed.
SEED_STRIDE = 100_000
EVAL_OFFSET = 50_000


@functools.cache
def _registered() -> list[str]:
    import ale_py

    gym.register_envs(ale_py)
    return sorted(gym.envs.registry.keys())


def resolve_env_id(env_id: str) -> str:
    """Return a registered gymnasium id; ``Pong`` is accepted for ``ALE/Pong-v5``.

    Raises :class:`ConfigError` naming the id and the closest registered ones.
    """
    ids = _registered()
    if env_id in ids:
        return env_id
    for cand in (f"ALE/{env_id}-v5", f"ALE/{env_id}"):
        if cand in ids:
            return cand
    raise ConfigError(f"env_id {env_id!r} is not a registered gymnasium environment{suggest(env_id, ids)}")


def is_atari(env_id: str) -> bool:
    spec = gym.envs.registry.get(env_id)
    entry = str(getattr(spec, "entry_point", "")) if spec else ""
    return "ale_py" in entry or env_id.startswith("ALE/")


def env_seeds(seed: int, n: int, *, evaluation: bool = False) -> list[int]:
    """Per-env seeds derived from the run seed; disjoint across seeds and between train and eval."""
    base = seed * SEED_STRIDE + (EVAL_OFFSET if evaluation else 0)
    if n > EVAL_OFFSET:
        raise ConfigError(f"num_envs={n} exceeds {EVAL_OFFSET}")
    return [base + i for i in range(n)]


# ------------------------------------------------------------------------------------------------------
# Atari wrappers that gymnasium does not ship
# ------------------------------------------------------------------------------------------------------
class EpisodicLife(gym.Wrapper):
    """Loss of a life is a terminal state for training; the game itself resets only when it is over."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = self.env.unwrapped.ale.lives()
        if 0 < lives < self.lives:
            terminated = True
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any):
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:  # a life was lost: continue the same game with a no-op step
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.game_over = False
        self.lives = self.env.unwrapped.ale.lives()
        return obs, info


class FireReset(gym.Wrapper):
    """Press FIRE (then action 2) after reset, for games that stand still until FIRE is pressed."""

    def reset(self, **kwargs: Any):
        self.env.reset(**kwargs)
        obs = None
        for action in (1, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        return obs, info


class ClipRewardSign(gym.RewardWrapper):
    """Train on sign(r) in {-1, 0, 1}; the episode statistics below this wrapper keep the raw score."""

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))


def needs_fire(env: gym.Env) -> bool:
    meanings = env.unwrapped.get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def make_atari(cfg: Config, *, evaluation: bool = False) -> gym.Env:
    kwargs = {"frameskip": 1, "repeat_action_probability": 0.0} if cfg.env_id.startswith("ALE/") else {}
    env = gym.make(cfg.env_id, **kwargs)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip, screen_size=84,
                                          terminal_on_life_loss=False, grayscale_obs=True, scale_obs=False)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if cfg.episodic_life and not evaluation:
        env = EpisodicLife(env)
    if needs_fire(env):
        env = FireReset(env)
    if cfg.clip_reward_sign and not evaluation:
        env = ClipRewardSign(env)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack)


def make_plain(cfg: Config, *, evaluation: bool = False) -> gym.Env:
    return gym.wrappers.RecordEpisodeStatistics(gym.make(cfg.env_id))


def _thunk(cfg: Config, evaluation: bool) -> Callable[[], gym.Env]:
    def make() -> gym.Env:
        _registered()
        return (make_atari if is_atari(cfg.env_id) else make_plain)(cfg, evaluation=evaluation)

    return make


def make_vector_env(cfg: Config, num_envs: int, *, evaluation: bool = False) -> gym.vector.VectorEnv:
    """A gymnasium vector env of ``num_envs`` copies, autoreset in the same step.

    ``SAME_STEP`` autoreset hands back the episode's final observation in ``info["final_obs"]``, which
    the collector needs to bootstrap V(s_T) on truncation. Batching: ``async`` (one process per env)
    pays off for Atari, whose emulator step dominates; cheap envs (CartPole, MuJoCo) run faster in
    one process (``sync``). ``auto`` picks by that rule; the bench measures both.
    """
    fns = [_thunk(cfg, evaluation) for _ in range(num_envs)]
    mode = cfg.vector_env
    if mode == "auto":
        mode = "async" if is_atari(cfg.env_id) and num_envs > 1 else "sync"
    if mode == "async":
        return AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


# ------------------------------------------------------------------------------------------------------
# Continuous-control normalization (numpy, batched over envs)
# ------------------------------------------------------------------------------------------------------
class ObsNormalizer:
    """o' = clip((o - mean) / sqrt(var + eps), -clip, clip), statistics from gymnasium's RunningMeanStd.

    ``frozen`` stops the statistics from moving: evaluation envs use a frozen copy of training's.
    """

    def __init__(self, shape: tuple[int, ...], clip: float, eps: float = 1e-8):
        self.rms = RunningMeanStd(shape=shape)
        self.clip, self.eps, self.frozen = clip, eps, False

    def __call__(self, obs: np.ndarray, update: bool = True) -> np.ndarray:
        if update and not self.frozen:
            self.rms.update(obs)
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
        self.rms.update(self.ret)
        out = reward / np.sqrt(self.rms.var + self.eps)
        self.ret[done] = 0.0
        return np.clip(out, -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"mean": self.rms.mean, "var": self.rms.var, "count": self.rms.count, "ret": self.ret.copy()}

    def load_state_dict(self, d: dict) -> None:
        self.rms.mean, self.rms.var, self.rms.count, self.ret = d["mean"], d["var"], d["count"], d["ret"].copy()
