"""Episode videos: play one episode and keep its frames, write them as MP4, show them in TensorBoard.

The pieces, each usable alone:

* :class:`~ppo_pipeline.algo.evaluation.AgentPolicy` (from evaluation): an :class:`~ppo_pipeline.algo.policy.Agent` (and the run's frozen observation
  statistics) as a numpy policy ``obs [1, *obs_shape] -> env action`` (deterministic: argmax / Gaussian
  mean, clipped to the action bounds like the collector's :func:`~ppo_pipeline.algo.collect.env_action`).
* :func:`record_episode`: one episode of a 1-env evaluation vector env (made with ``render=True``),
  returning an :class:`Episode` with the return, the length and one ``uint8 [H, W, 3]`` frame per agent
  step (the screen the action was chosen on; Atari: the real RGB game screen, not the 84x84 input).
* :func:`write_mp4`: frames -> H.264 MP4 through imageio + imageio-ffmpeg (the wheel ships ffmpeg).
* :func:`add_clip_to_tensorboard`: frames -> animated GIF image summary. ``SummaryWriter.add_video``
  needs moviepy (not a dependency); TensorBoard's image dashboard plays GIFs, so the GIF is encoded with
  Pillow and written as a plain ``Summary.Image``.
* :func:`record_evaluation_video`: the four above in one call, for the trainer's ``--capture-video``.

Frame rate (:func:`default_fps`): real time. Atari: the emulator runs at 60 Hz and one frame is kept per
agent step, so ``60 / frame_skip`` (15 fps for the paper's skip of 4; ALE's own metadata says 30, which
is not the agent's rate). Other envs: their ``metadata["render_fps"]`` (MuJoCo sets it to 1/dt, so one
frame per env step is real time), 30 when an env does not say.

Headless MuJoCo needs an offscreen OpenGL platform: :func:`ppo_pipeline.envs.gymnasium.make_vector_env`
picks EGL when it builds envs that render and no display is set (``MUJOCO_GL`` wins when set).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from ..algo.evaluation import AgentPolicy, Policy
from ..errors import UserError

if TYPE_CHECKING:  # only for annotations: keep this module importable without building models
    from ..algo.normalize import ObsNormalizer
    from ..algo.policy import Agent
    from ..config import Config

Frame = np.ndarray  # uint8 [H, W, 3]

ATARI_HZ = 60  # ALE emulator frames per second
FALLBACK_FPS = 30.0  # for envs whose metadata gives no render_fps
GIF_MAX_FPS = 25.0  # browsers slow down GIF frames shorter than 20 ms; keep every k-th frame above this
GIF_MAX_SIDE = 256  # TensorBoard clips are shrunk (box filter, integer factor) to at most this side
GIF_MAX_SECONDS = 30.0  # and cut to this length of real time


class VideoError(UserError):
    """Frames cannot be rendered or written; the message names the env or the file."""


@dataclass
class Episode:
    """One played episode: real return (raw env reward), length in agent steps, frames (maybe none).

    ``frames[t]`` is the screen on which action ``t`` was chosen, so ``len(frames) == length`` when
    recorded. ``truncated_by_cap``: the episode was stopped at ``max_steps`` before it ended.
    """

    ret: float
    length: int
    frames: list[Frame] = field(default_factory=list)
    truncated_by_cap: bool = False


# ------------------------------------------------------------------------------------------------------
# Playing
# ------------------------------------------------------------------------------------------------------
def render_frame(envs: gym.vector.VectorEnv) -> Frame:
    """The current ``rgb_array`` frame of the first env of ``envs`` (made with ``render=True``).

    Raises :class:`VideoError` naming the env when it cannot render here (no ``render_mode``, a missing
    renderer such as pygame, no OpenGL platform for MuJoCo).
    """
    name = _env_name(envs)
    if getattr(envs, "render_mode", None) != "rgb_array":
        raise VideoError(f"{name} was not made with render_mode='rgb_array' (make_vector_env(..., render=True))")
    try:
        frames = envs.render()
    except Exception as e:  # DependencyNotInstalled, mujoco.FatalError, OpenGL errors ...
        msg = " ".join(str(e).split())[:200]
        raise VideoError(f"{name} cannot render frames here ({type(e).__name__}: {msg})") from None
    frame = frames[0] if isinstance(frames, (tuple, list)) else frames
    if frame is None or np.ndim(frame) != 3 or np.shape(frame)[-1] != 3:
        shape = np.shape(frame) if frame is not None else ()
        raise VideoError(f"{name} rendered {type(frame).__name__} {shape}, not an RGB frame [H, W, 3]")
    return np.asarray(frame, dtype=np.uint8)


def record_episode(
    envs: gym.vector.VectorEnv, policy: Policy, seed: int, max_steps: int, *, record: bool = True
) -> Episode:
    """Play one episode on the 1-env vector env ``envs`` from ``reset(seed=[seed])``.

    Steps ``envs`` with ``policy(obs)`` (obs ``[1, *obs_shape]``) until the episode terminates, is
    truncated by the env, or ``max_steps`` agent steps were taken. Returns the summed raw reward, the
    length, and (``record``) one frame per step. The env autoresets at the end (``SAME_STEP``): the frame
    after the last step would show the next episode, so none is taken after it.
    """
    if envs.num_envs != 1:
        raise ValueError(f"record_episode plays a 1-env vector env, got num_envs={envs.num_envs}")
    if max_steps < 1:
        raise ValueError(f"max_steps={max_steps} must be >= 1")
    obs, _ = envs.reset(seed=[int(seed)])  # type: ignore[arg-type]  # stub: seed int; vector envs take a list
    policy.ended(np.ones(1, dtype=bool))  # a new episode (a recurrent policy starts from a fresh state)
    frames: list[Frame] = []
    ret, length, ended = 0.0, 0, False
    while length < max_steps and not ended:
        if record:
            frames.append(render_frame(envs))
        obs, reward, terminated, truncated, _ = envs.step(policy(obs))
        policy.ended(np.asarray(terminated) | np.asarray(truncated))
        ret += float(reward[0])
        length += 1
        ended = bool(terminated[0] or truncated[0])
    return Episode(ret=ret, length=length, frames=frames, truncated_by_cap=not ended)


# ------------------------------------------------------------------------------------------------------
# Frame rate and headless rendering
# ------------------------------------------------------------------------------------------------------
def default_fps(envs: gym.vector.VectorEnv | gym.Env, *, atari_frame_skip: int | None = None) -> float:
    """Real-time playback rate for one frame per agent step.

    ``atari_frame_skip`` (Atari only; the run's ``frame_skip``): ``60 / atari_frame_skip``. Otherwise the
    env's ``metadata["render_fps"]``, or 30 when it gives none.
    """
    if atari_frame_skip:
        return ATARI_HZ / atari_frame_skip
    fps = (getattr(envs, "metadata", None) or {}).get("render_fps")
    return float(fps) if isinstance(fps, (int, float)) and fps > 0 else FALLBACK_FPS


# ------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------
def _even(frame: Frame) -> Frame:
    """Pad ``frame`` with black to even height and width (H.264's yuv420p halves both)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def write_mp4(path: Path | str, frames: Sequence[Frame], fps: float) -> Path:
    """Write ``frames`` (``uint8 [H, W, 3]`` each, one size) to the MP4 file ``path`` at ``fps``.

    H.264 (libx264, yuv420p) through imageio's ffmpeg plugin; odd sizes are padded with one black row or
    column instead of being rescaled. Creates the parent folder; returns ``path``. Raises
    :class:`VideoError` for no frames, frames of different sizes, or a file that cannot be written.
    """
    import imageio.v2 as imageio

    path = Path(path)
    if not frames:
        raise VideoError(f"no frames to write to {str(path)!r}")
    shape = frames[0].shape
    if any(f.shape != shape for f in frames):
        raise VideoError(f"frames for {str(path)!r} differ in size (first {shape})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = imageio.get_writer(
            path, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=2
        )
        with writer:  # not `as writer`: imageio's stubs type __enter__ as the base class, without append_data
            for frame in frames:
                writer.append_data(_even(np.asarray(frame, dtype=np.uint8)))
    except (OSError, RuntimeError) as e:
        raise VideoError(
            f"cannot write video {str(path)!r} ({type(e).__name__}: {' '.join(str(e).split())[:200]})"
        ) from None
    return path


def encode_gif(
    frames: Sequence[Frame],
    fps: float,
    *,
    max_fps: float = GIF_MAX_FPS,
    max_side: int = GIF_MAX_SIDE,
    max_seconds: float = GIF_MAX_SECONDS,
) -> tuple[bytes, int, int]:
    """Frames -> (looping animated GIF bytes, height, width), shrunk for a TensorBoard summary.

    Keeps the first ``max_seconds`` of real time, every k-th frame so that at most ``max_fps`` remain
    (the frame duration keeps real-time speed), and shrinks by an integer factor (box filter) until the
    longer side is at most ``max_side``.
    """
    from PIL import Image

    if not frames:
        raise VideoError("no frames to encode")
    frames = list(frames[: max(1, int(max_seconds * fps))])
    stride = max(1, math.ceil(fps / max_fps))
    kept = frames[::stride]
    h, w = kept[0].shape[:2]
    factor = max(1, math.ceil(max(h, w) / max_side))
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in kept]
    if factor > 1:
        images = [im.reduce(factor) for im in images]
    duration_ms = max(20, round(1000.0 * stride / fps / 10) * 10)  # GIF stores centiseconds
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    return buf.getvalue(), images[0].height, images[0].width


def add_clip_to_tensorboard(writer: Any, tag: str, frames: Sequence[Frame], step: int, fps: float) -> None:
    """Add ``frames`` to the ``torch.utils.tensorboard.SummaryWriter`` ``writer`` as an animated GIF image
    under ``tag`` at global step ``step`` (TensorBoard's Images tab plays it).

    Built as a ``Summary.Image`` proto (what ``add_video`` writes when moviepy is installed) and handed to
    the writer's event file; see :func:`encode_gif` for the size limits.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    gif, height, width = encode_gif(frames, fps)
    image = Summary.Image(height=height, width=width, colorspace=3, encoded_image_string=gif)
    summary = Summary(value=[Summary.Value(tag=tag, image=image)])
    # SummaryWriter has no public method for a ready-made summary; add_video itself goes this way.
    writer._get_file_writer().add_summary(summary, step)


# ------------------------------------------------------------------------------------------------------
# All in one: the trainer's --capture-video
# ------------------------------------------------------------------------------------------------------
def record_evaluation_video(
    cfg: Config,
    agent: Agent,
    obs_norm: ObsNormalizer | None,
    path: Path | str,
    *,
    writer: Any = None,
    step: int = 0,
    tag: str = "eval/video",
) -> Episode:
    """Record the first episode of an evaluation and write it to the MP4 ``path`` (and, with a
    ``writer``, to TensorBoard under ``tag`` at ``step``).

    The episode is the one :func:`~ppo_pipeline.algo.evaluation.evaluate` plays first: an evaluation env of
    ``cfg``'s stack reset with ``env_seeds(cfg.seed, 1, evaluation=True)[0]``, the deterministic policy,
    frozen observation statistics, at most ``cfg.eval_max_steps`` steps. Raises :class:`VideoError` when
    the env cannot render here.
    """
    from ..envs import make_vector_env
    from ..envs.ids import is_atari
    from ..envs.seeds import env_seeds

    envs = make_vector_env(cfg, 1, evaluation=True, render=True)
    try:
        norm = obs_norm.frozen_copy() if obs_norm is not None else None
        policy = AgentPolicy(agent, norm, envs.single_action_space, deterministic=True)
        with torch.no_grad():
            episode = record_episode(envs, policy, env_seeds(cfg.seed, 1, evaluation=True)[0], cfg.eval_max_steps)
        fps = default_fps(envs, atari_frame_skip=cfg.frame_skip if is_atari(cfg.env_id) else None)
    finally:
        envs.close()
    write_mp4(path, episode.frames, fps)
    if writer is not None:
        add_clip_to_tensorboard(writer, tag, episode.frames, step, fps)
    return episode


def _env_name(envs: Any) -> str:
    spec = getattr(envs, "spec", None)
    if spec is None:
        inner = getattr(envs, "envs", None)
        spec = getattr(inner[0], "spec", None) if inner else None
    return getattr(spec, "id", None) or type(envs).__name__
