"""The gymnasium backend: env stacks with the Atari details of "The 37 Implementation Details of PPO",
batched by gymnasium's vector envs.

Why gymnasium wrappers and a vector env rather than torchrl transforms: per step, torchrl's env and
transform machinery costs far more than the numpy wrappers (``python -m ppo_pipeline.bench
--collectors`` measures both on your machine). The env stack therefore stays in numpy and the
collector (:mod:`ppo_pipeline.algo.collect`) turns whole batches into TensorDicts.

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

Continuous control: observation normalization and reward scaling live in :mod:`ppo_pipeline.algo.normalize`
(applied by the collector); actions are clipped to the bounds only when sent to the env
(:func:`ppo_pipeline.algo.collect.env_action`; the collector stores the raw sample).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv

from ..config import Config
from .ids import family, import_env_module, registered

if TYPE_CHECKING:
    from ale_py import AtariEnv

# Signals a worker process never acts on (see signals_blocked).
WORKER_BLOCKED = (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)


# ------------------------------------------------------------------------------------------------------
# Atari wrappers that gymnasium does not ship
# ------------------------------------------------------------------------------------------------------
def ale_env(env: gym.Env) -> AtariEnv:
    """The ALE env under ``env``'s wrappers (gymnasium types ``unwrapped`` as any ``Env``)."""
    return cast("AtariEnv", env.unwrapped)


class EpisodicLife(gym.Wrapper):
    """Loss of a life is a terminal state for training; the game itself resets only when it is over."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = ale_env(self.env).ale.lives()
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
        self.lives = ale_env(self.env).ale.lives()
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

    def reward(self, reward: SupportsFloat) -> float:
        return float(np.sign(float(reward)))


def needs_fire(env: gym.Env) -> bool:
    meanings = ale_env(env).get_action_meanings()
    return len(meanings) >= 3 and meanings[1] == "FIRE"


def make_atari(cfg: Config, *, evaluation: bool = False, render: bool = False) -> gym.Env:
    kwargs: dict[str, Any] = {"frameskip": 1, "repeat_action_probability": 0.0} if cfg.env_id.startswith("ALE/") else {}
    env = gym.make(cfg.env_id, render_mode="rgb_array" if render else None, **kwargs)
    env = gym.wrappers.AtariPreprocessing(
        env,
        noop_max=cfg.noop_max,
        frame_skip=cfg.frame_skip,
        screen_size=84,
        terminal_on_life_loss=False,
        grayscale_obs=True,
        scale_obs=False,
    )
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if cfg.episodic_life and not evaluation:
        env = EpisodicLife(env)
    if needs_fire(env):
        env = FireReset(env)
    if cfg.clip_reward_sign and not evaluation:
        env = ClipRewardSign(env)
    return gym.wrappers.FrameStackObservation(env, cfg.frame_stack)


class ActionMasksInObservation(gym.ObservationWrapper):
    """sb3-contrib's action-mask convention (the env has a method ``action_masks()``, True = allowed) turned into
    PettingZoo's and torchrl's, which the agent reads: a ``Dict`` observation ``{"observation": obs,
    "action_mask": MultiBinary(n)}``, the mask read after every reset and step."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        actions = env.action_space
        assert isinstance(actions, gym.spaces.Discrete)  # has_action_masks: the env's actions are Discrete
        self.observation_space = gym.spaces.Dict(
            {"observation": env.observation_space, "action_mask": gym.spaces.MultiBinary(int(actions.n))}
        )

    def observation(self, observation: Any) -> dict[str, Any]:
        mask = np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=np.int8)
        return {"observation": observation, "action_mask": mask}


def has_action_masks(env: gym.Env) -> bool:
    """An env of sb3-contrib's convention: a Discrete action space and an ``action_masks()`` method."""
    return isinstance(env.action_space, gym.spaces.Discrete) and callable(getattr(env.unwrapped, "action_masks", None))


class QuietReset(gym.Wrapper):
    """A Bullet env whose reset (where pybullet connects its physics server and prints ``argv[0]=`` to the C
    stdout) runs with that stdout silenced (:func:`ppo_pipeline.workarounds.c_output_silenced`, workaround 4)."""

    def reset(self, **kwargs: Any):
        from ..workarounds import c_output_silenced

        with c_output_silenced():
            return self.env.reset(**kwargs)


def is_flagrun(env_id: str) -> bool:
    """The Bullet humanoid flag runs (``HumanoidFlagrunBulletEnv-v0``, ``HumanoidFlagrunHarderBulletEnv-v0``)."""
    return family(env_id) == "bullet" and "Flagrun" in env_id


class FlagInView(gym.Wrapper):
    """A Bullet flag run's ``rgb_array`` frames with the flag in them.

    The env's own camera looks at the robot from 3 m and never turns, so the flag (a red sphere of radius
    0.5 m at height 0.7 m, up to about 14 m away) is out of the frame in most steps. This camera looks at the
    midpoint of the robot and the flag from the side (yaw along the robot -> flag heading: the robot on the
    left, the flag on the right), at a distance that fits both with a 1.5 m margin (at least the env's 3 m).
    It turns with the heading, and cuts when the env moves the flag (reached, or timed out). Same image
    size (320x240) and renderer (TinyRenderer without EGL) as the env's; only ``render`` is changed.
    """

    FOV = 60.0  # vertical field of view, degrees (the env's)
    PITCH = -20.0
    MARGIN = 1.5  # metres beside the robot and the flag (a falling robot reaches out)
    MIN_DISTANCE = 3.0  # the env's own camera distance

    def camera(self) -> tuple[tuple[float, ...], tuple[float, ...], int, int] | None:
        """(view matrix, projection matrix, width, height) for the current state (pybullet's column-major
        16-tuples), or None before the first reset."""
        u: Any = self.env.unwrapped  # a Bullet env (pybullet ships no types)
        robot: Any = getattr(u, "robot", None)
        if (
            getattr(u, "physicsClientId", -1) < 0
            or not hasattr(robot, "walk_target_x")
            or not hasattr(robot, "body_real_xyz")
        ):
            return None
        w, h = int(u._render_width), int(u._render_height)
        bx, by, _ = robot.body_real_xyz
        fx, fy = float(robot.walk_target_x), float(robot.walk_target_y)
        half_sep = math.hypot(fx - bx, fy - by) / 2
        half_width = math.tan(math.radians(self.FOV / 2)) * w / h  # visible half-width per metre of distance
        distance = max(self.MIN_DISTANCE, (half_sep + self.MARGIN) / half_width)
        view = u._p.computeViewMatrixFromYawPitchRoll(
            cameraTargetPosition=[(bx + fx) / 2, (by + fy) / 2, 0.7],
            distance=distance,
            yaw=math.degrees(math.atan2(fy - by, fx - bx)),
            pitch=self.PITCH,
            roll=0,
            upAxisIndex=2,
        )
        proj = u._p.computeProjectionMatrixFOV(fov=self.FOV, aspect=w / h, nearVal=0.1, farVal=100.0)
        return tuple(view), tuple(proj), w, h

    def render(self) -> Any:
        cam = None if self.env.unwrapped.render_mode != "rgb_array" else self.camera()
        if cam is None:
            return self.env.render()
        import pybullet

        view, proj, w, h = cam
        bullet: Any = self.env.unwrapped  # a Bullet env (pybullet ships no types)
        _, _, px, _, _ = bullet._p.getCameraImage(
            width=w, height=h, viewMatrix=view, projectionMatrix=proj, renderer=pybullet.ER_BULLET_HARDWARE_OPENGL
        )
        return np.reshape(np.asarray(px, dtype=np.uint8), (h, w, -1))[:, :, :3].copy()


def make_plain(cfg: Config, *, evaluation: bool = False, render: bool = False, fam: str | None = None) -> gym.Env:
    """Any other env: a registered id, or a user's ``package.module:EnvClass``, with episode statistics (and an
    env's ``action_masks()`` moved into its observation). ``fam``: the id's family (:func:`.ids.family`)."""
    fam = fam or family(cfg.env_id)
    env_id: str | EnvSpec = cfg.env_id
    if fam == "class":
        env_id = EnvSpec(id=cfg.env_id.rpartition(":")[2], entry_point=cfg.env_id)
    env = gym.make(env_id, render_mode="rgb_array" if render else None)
    if fam == "bullet":
        env = QuietReset(env)
        if render and is_flagrun(cfg.env_id):
            env = FlagInView(env)
    if has_action_masks(env):
        env = ActionMasksInObservation(env)
    return gym.wrappers.RecordEpisodeStatistics(env)


def env_factory(cfg: Config, *, evaluation: bool = False, render: bool = False) -> Callable[[], gym.Env]:
    """A picklable function that builds one env of ``cfg``'s stack (what a vector env's worker calls; the id's
    family is decided here, in the process that makes the vector env)."""
    fam = family(cfg.env_id)

    def make() -> gym.Env:
        if fam in ("atari", "bullet"):  # their ids are registered by importing their packages (a worker's too)
            registered()
        import_env_module(cfg.env_module)  # (again) in a worker process
        quiet_mujoco_if_used(fam == "mujoco")
        if fam == "atari":
            return make_atari(cfg, evaluation=evaluation, render=render)
        return make_plain(cfg, evaluation=evaluation, render=render, fam=fam)

    return make


def quiet_mujoco_if_used(mujoco_task: bool) -> None:
    """Workaround 5 (:func:`ppo_pipeline.workarounds.quiet_mujoco_warnings`) in this process, before an env is
    built, when it may compile a MuJoCo model: gymnasium's MuJoCo tasks (``mujoco_task``), or any env once mujoco
    is imported (a user's env module); other envs do not pay for importing mujoco."""
    if mujoco_task or "mujoco" in sys.modules:
        from ..workarounds import quiet_mujoco_warnings

        quiet_mujoco_warnings()


def make_vector_env(
    cfg: Config, num_envs: int, *, evaluation: bool = False, render: bool = False
) -> gym.vector.VectorEnv:
    """A gymnasium vector env of ``num_envs`` copies, autoreset in the same step.

    ``SAME_STEP`` autoreset hands back the episode's final observation in ``info["final_obs"]``, which
    the collector needs to bootstrap V(s_T) on truncation. Batching: ``async`` (one process per env)
    pays off for Atari, whose emulator step dominates; cheap envs (CartPole, MuJoCo) run faster in
    one process (``sync``). ``auto`` picks by that rule; the bench measures both.
    """
    if render:
        use_headless_gl()
    fns = [env_factory(cfg, evaluation=evaluation, render=render) for _ in range(num_envs)]
    mode = cfg.vector_env
    if mode == "auto":
        mode = "async" if family(cfg.env_id) == "atari" and num_envs > 1 else "sync"
    if mode == "async":
        with signals_blocked():  # the workers inherit the mask: Ctrl-C and SLURM's signals are the trainer's
            envs = AsyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP, context="spawn")
            if set(signal.sigpending()) & set(WORKER_BLOCKED):
                envs.close()  # a Ctrl-C came meanwhile and is raised on leaving: leave no orphaned workers
        return envs
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)


def use_headless_gl() -> None:
    """Make MuJoCo render offscreen through EGL when no display is set and ``MUJOCO_GL`` is unset.

    Without it gymnasium tries GLFW first, which fails on a machine without a display. Call before the
    first MuJoCo env renders; an explicit ``MUJOCO_GL`` (e.g. ``osmesa``) is left as it is.
    """
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("MUJOCO_GL", "egl")


@contextlib.contextmanager
def signals_blocked(signums: tuple[int, ...] = WORKER_BLOCKED) -> Iterator[None]:
    """Block ``signums`` in this thread while inside; processes started inside inherit the blocked mask.

    A terminal's Ctrl-C and SLURM's preemption signals go to every process of the group. The env worker
    processes must not die of them (a traceback per worker, then a broken pipe in the trainer): started
    with the signals blocked, they never receive them, while the trainer, whose mask is restored on
    exit (a signal that came meanwhile is delivered then), finishes the update and checkpoints. The
    workers end when the trainer closes their pipes.

    multiprocessing's resource tracker is started first: starting it *unblocks* SIGINT and SIGTERM in
    the calling thread (``resource_tracker.ensure_running``), which would undo the block for the workers.
    """
    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, signums)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
