"""Watch a trained policy: play episodes of a run's checkpoint, print their returns, optionally record MP4s.

::

    python -m ppo_pipeline.play runs/Hopper-v5__clip__s0                       # 10 deterministic episodes
    python -m ppo_pipeline.play runs/ALE-Pong-v5__clip__s0 --episodes 3 --video videos/pong
    python -m ppo_pipeline.play RUN_DIR --checkpoint RUN_DIR/checkpoint-00000100.pt --stochastic

The run's ``config.json`` rebuilds the evaluation env stack (no life-loss episodes, raw rewards) and the
network; the checkpoint (the newest ``checkpoint-*.pt`` of RUN_DIR, or ``--checkpoint``) gives the
weights and the *frozen* observation-normalization statistics of training, so a policy trained with
``normalize_obs`` sees the inputs it was trained on. Episode ``i`` (0-based) is reset with seed
``env_seeds(seed, N, evaluation=True)[i]``: the same episodes the trainer's evaluation plays, one after
another on one env. Deterministic by default (argmax / Gaussian mean); ``--stochastic`` samples, from
torch's generator seeded with the run's seed.

Output: one line per episode, then ``mean return R ± S over N episodes (length L ± S)`` (S: standard
deviation over the episodes, ddof 0). ``--video DIR`` writes ``DIR/episode-000.mp4``, ... (one frame per
agent step, real-time rate, see :mod:`ppo_pipeline.run.video`; Atari: the RGB game screen).

Bad input prints one line ``error: ...`` and exits with code 2 before any episode starts; Ctrl-C prints
one line and exits with code 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from .. import rundir
from ..algo.evaluation import AgentPolicy
from ..cli import OneLineParser, fail
from ..config import Config
from ..envs.seeds import env_seeds
from ..errors import UserError
from ..run import checkpoint
from ..run.prepare import resolve, resolve_device
from ..run.video import Episode, default_fps, record_episode, write_mp4

if TYPE_CHECKING:  # annotations only; the network modules load when a policy is built
    from ..algo.policy import Agent


class RunError(UserError):
    """A run directory, its config or its checkpoint that cannot be played; the message names it."""


@dataclass
class SavedRun:
    """What a run directory holds for playing: its config, the chosen checkpoint and that checkpoint's state."""

    path: Path
    cfg: Config  # config.json, env id resolved (device not resolved)
    checkpoint: Path
    state: dict[str, Any]  # checkpoint.load_for_run's dict: agent, obs_norm, update, ...


# ------------------------------------------------------------------------------------------------------
# Loading (shared with ppo_pipeline.tools.export)
# ------------------------------------------------------------------------------------------------------
def read_config(run_dir: Path) -> Config:
    """RUN_DIR's config (:func:`ppo_pipeline.rundir.read_config`, the one reader), env id resolved.

    Raises :class:`RunError` when RUN_DIR is missing, is no directory, or its config.json cannot be read
    as a run's; :class:`~ppo_pipeline.errors.ConfigError` for an unknown env id.
    """
    try:
        cfg = rundir.read_config(run_dir)
    except UserError as e:
        raise RunError(str(e)) from None
    return resolve(cfg)


def load_saved_run(run_dir: Path | str, checkpoint_file: Path | str | None = None) -> SavedRun:
    """Read RUN_DIR's config and the checkpoint to play (``checkpoint_file``, else the newest one).

    The checkpoint must be a complete ppo-pipeline checkpoint of this run
    (:func:`ppo_pipeline.run.checkpoint.load_for_run`) and carry observation statistics when the run
    normalizes observations. Raises a :class:`~ppo_pipeline.errors.UserError` with one line otherwise.
    """
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    if checkpoint_file is None:
        found = checkpoint.latest(run_dir)
        if found is None:
            raise RunError(f"RUN_DIR {str(run_dir)!r} has no checkpoint-*.pt (the run wrote none yet)")
        checkpoint_file = found
    path = Path(checkpoint_file)
    if path.is_dir():
        raise RunError(f"--checkpoint {str(path)!r} is a directory, not a checkpoint file")
    state = checkpoint.load_for_run(path, cfg.to_dict())
    if not isinstance(state.get("agent"), dict):
        raise checkpoint.CheckpointError(f"checkpoint {str(path)!r} holds no network weights")
    if cfg.normalize_obs and not isinstance(state.get("obs_norm"), dict):
        raise checkpoint.CheckpointError(
            f"checkpoint {str(path)!r} has no observation-normalization statistics, which this run "
            f"(normalize_obs=true) needs to see its inputs as in training"
        )
    return SavedRun(run_dir, cfg, path, state)


def _is_obs_stats(d: Any) -> bool:
    return isinstance(d, dict) and all(k in d for k in ("mean", "var", "count"))


def frozen_obs_norm(run: SavedRun, obs_space: gym.Space) -> Any:
    """The run's observation statistics as a frozen normalizer (None when the run does not normalize; per vector
    entry for a ``Dict`` observation space).

    Raises :class:`~ppo_pipeline.run.checkpoint.CheckpointError` when their shape is not the env's.
    """
    from ..algo.normalize import DictObsNormalizer, make_obs_normalizer

    if not run.cfg.normalize_obs:
        return None
    norm = make_obs_normalizer(obs_space, run.cfg.clip_obs)
    saved = run.state["obs_norm"]
    per_key = norm.norms if isinstance(norm, DictObsNormalizer) else {"": norm}
    for key, one in per_key.items():
        stats = saved.get(key) if key else saved
        want = tuple(one.rms.mean.shape)
        shape = tuple(np.shape(stats["mean"])) if _is_obs_stats(stats) else None
        if shape != want or np.shape(stats["var"]) != shape:
            raise checkpoint.CheckpointError(
                f"checkpoint {str(run.checkpoint)!r} has observation statistics{f' for {key!r}' if key else ''} of "
                f"shape {shape}, the env's observations are {want}"
            )
        one.load_state_dict({k: np.asarray(v) if k != "count" else v for k, v in stats.items()})
    return norm.frozen_copy()


def build_agent(run: SavedRun, obs_space: gym.Space, action_space: gym.Space, device: str = "cpu") -> Agent:
    """The run's :class:`~ppo_pipeline.algo.policy.Agent` with the checkpoint's weights, in eval mode on ``device``.

    Raises :class:`~ppo_pipeline.run.checkpoint.CheckpointError` when the weights do not fit the network.
    """
    from ..algo.policy import Agent

    agent = Agent(obs_space, action_space, run.cfg)
    try:
        agent.load_state_dict(run.state["agent"])
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise checkpoint.CheckpointError(
            f"checkpoint {str(run.checkpoint)!r} does not fit this run's network ({first})"
        ) from None
    return agent.to(device).eval()


# ------------------------------------------------------------------------------------------------------
# Playing
# ------------------------------------------------------------------------------------------------------
def episode_line(i: int, n: int, seed: int, ep: Episode, video: Path | None = None) -> str:
    """``episode 1/10 (seed 50000): return 21.00, length 812`` (+ ``, stopped at --max-steps`` / video)."""
    line = f"episode {i + 1}/{n} (seed {seed}): return {ep.ret:.2f}, length {ep.length}"
    if ep.truncated_by_cap:
        line += ", stopped at --max-steps"
    if video is not None:
        line += f", video {video}"
    return line


def summary_line(episodes: Sequence[Episode]) -> str:
    """``mean return R ± S over N episodes (length L ± S)``, S the standard deviation (ddof 0)."""
    rets = np.array([e.ret for e in episodes], dtype=float)
    lens = np.array([e.length for e in episodes], dtype=float)
    n = len(episodes)
    return (
        f"mean return {rets.mean():.2f} ± {rets.std():.2f} over {n} episode{'s' if n != 1 else ''} "
        f"(length {lens.mean():.1f} ± {lens.std():.1f})"
    )


def play(
    run: SavedRun,
    *,
    episodes: int,
    deterministic: bool = True,
    video_dir: Path | None = None,
    device: str = "cpu",
    max_steps: int | None = None,
    fps: float | None = None,
    out: Any = sys.stdout,
) -> list[Episode]:
    """Play ``episodes`` episodes of ``run`` one after another and print a line for each to ``out``.

    Episode ``i`` is reset with ``env_seeds(seed, episodes, evaluation=True)[i]`` and lasts at most
    ``max_steps`` agent steps (default: the run's ``eval_max_steps``). With ``video_dir`` each episode is
    also written to ``video_dir/episode-{i:03d}.mp4`` at ``fps`` (default: real time). Returns the episodes
    (their frames dropped once written).
    """
    from ..envs import make_vector_env, spec_of

    cfg = run.cfg
    envs = make_vector_env(cfg, 1, evaluation=True, render=video_dir is not None)
    try:
        agent = build_agent(run, envs.single_observation_space, envs.single_action_space, device)
        norm = frozen_obs_norm(run, envs.single_observation_space)
        policy = AgentPolicy(agent, norm, envs.single_action_space, deterministic=deterministic)
        rate = fps or default_fps(envs, atari_frame_skip=cfg.frame_skip if spec_of(cfg).is_atari else None)
        if not deterministic:
            torch.manual_seed(cfg.seed)
        seeds = env_seeds(cfg.seed, episodes, evaluation=True)
        played: list[Episode] = []
        for i, seed in enumerate(seeds):
            ep = record_episode(envs, policy, seed, max_steps or cfg.eval_max_steps, record=video_dir is not None)
            path = write_mp4(video_dir / f"episode-{i:03d}.mp4", ep.frames, rate) if video_dir is not None else None
            ep.frames = []
            played.append(ep)
            print(episode_line(i, episodes, seed, ep, path), file=out, flush=True)
    finally:
        envs.close()
    return played


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------
def at_least(low: int | float, kind: type = int):
    """argparse type: a number of ``kind`` >= ``low`` (the message names the bad value)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not value >= low:
            raise argparse.ArgumentTypeError(f"{text} must be >= {low}")
        return value

    parse.__name__ = kind.__name__
    return parse


def build_parser() -> argparse.ArgumentParser:
    """``python -m ppo_pipeline.play``'s options (every default shown in ``--help``)."""
    p = OneLineParser(
        prog="python -m ppo_pipeline.play",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (runs/<name>) with config.json and checkpoints")
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="checkpoint to play (default: the newest checkpoint-*.pt in RUN_DIR)",
    )
    p.add_argument(
        "--episodes",
        type=at_least(1),
        default=10,
        metavar="N",
        help="episodes to play, one after another (default: 10)",
    )
    p.add_argument(
        "--stochastic",
        action="store_true",
        help="sample actions from the policy instead of argmax / Gaussian mean (default: off)",
    )
    p.add_argument(
        "--video",
        metavar="DIR",
        default=None,
        help="write DIR/episode-000.mp4, ... from the env's rgb_array frames (default: no video)",
    )
    p.add_argument(
        "--fps",
        type=at_least(1e-3, float),
        default=None,
        metavar="FPS",
        help="video frame rate (default: real time, e.g. 15 for Atari with frame skip 4)",
    )
    p.add_argument(
        "--device",
        default="auto",
        metavar="{auto,cpu,cuda,cuda:N}",
        help="torch device for the policy (default: auto = cuda when available)",
    )
    p.add_argument(
        "--max-steps",
        type=at_least(1),
        default=None,
        metavar="N",
        help="cap on an episode's agent steps (default: the run's eval_max_steps)",
    )
    return p


def _video_dir(text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--video {text!r} cannot be used as a folder ({e.strerror or type(e).__name__})") from None
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when all episodes were played, 2 for bad input, 130 on Ctrl-C."""
    try:
        ns = build_parser().parse_args(argv)
        try:
            device = resolve_device(ns.device)
            run = load_saved_run(ns.run_dir, ns.checkpoint)
            video_dir = _video_dir(ns.video)
        except UserError as e:
            fail(str(e))
        stats = "frozen run statistics" if run.cfg.normalize_obs else "none"
        print(
            f"playing {run.cfg.env_id} from {run.checkpoint} (update {run.state['update']}), "
            f"{'stochastic' if ns.stochastic else 'deterministic'} policy, observation normalization: "
            f"{stats}, device {device}",
            flush=True,
        )
        try:
            episodes = play(
                run,
                episodes=ns.episodes,
                deterministic=not ns.stochastic,
                video_dir=video_dir,
                device=device,
                max_steps=ns.max_steps,
                fps=ns.fps,
            )
        except UserError as e:
            fail(str(e))
        print(summary_line(episodes), flush=True)
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: play stopped by Ctrl-C\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
