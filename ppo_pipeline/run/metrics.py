"""What a run writes as it trains: ``metrics.csv`` (one row per update), ``episodes.csv`` (one row per
finished training episode), TensorBoard events, and ``summary.json`` with the time split by phase.

Columns of ``metrics.csv`` (the wall-clock columns ``sps`` and ``time_s`` are the only ones that differ
between two CPU runs of the same seed):
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import rundir

METRIC_COLUMNS = [
    "update",
    "step",
    "episode_return_mean",
    "episode_return_min",
    "episode_return_max",
    "episode_length_mean",
    "episodes",
    "return_mean_100",
    "policy_loss",
    "value_loss",
    "entropy",
    "approx_kl",
    "kl",
    "clip_fraction",
    "explained_variance",
    "lr",
    "clip_epsilon",
    "kl_beta",
    "log_std",
    "eval_return_mean",
    "sps",
    "time_s",
]
TIMING_COLUMNS = ("sps", "time_s")
EPISODE_COLUMNS = ["step", "return", "length"]

__doc__ += "\n" + ", ".join(f"``{c}``" for c in METRIC_COLUMNS) + "\n"


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return repr(round(v, 8)) if abs(v) >= 1e-4 or v == 0 else f"{v:.8g}"
    return str(v)


class CsvLog:
    """Append-only CSV with a fixed header; ``truncate(n)`` keeps the header and the first n rows."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns = path, columns
        if not path.exists():
            rundir.write_text(path, ",".join(columns) + "\n")

    def write(self, rows: Iterable[dict]) -> None:
        with self.path.open("a", newline="") as f:
            for row in rows:
                f.write(",".join(_cell(row.get(c)) for c in self.columns) + "\n")

    def truncate(self, n: int) -> None:
        """Keep the header and the first ``n`` rows; atomic (a crash leaves the old file or the new one)."""
        lines = self.path.read_text().splitlines(keepends=True)
        rundir.write_text(self.path, "".join(lines[: n + 1]))


class RunLogger:
    """metrics.csv + episodes.csv + TensorBoard for one run directory."""

    def __init__(self, run_path: Path, tensorboard: bool = True, purge_step: int | None = None, tracker: Any = None):
        self.run_path = run_path
        self.metrics = CsvLog(run_path / rundir.METRICS, METRIC_COLUMNS)
        self.episodes = CsvLog(run_path / rundir.EPISODES, EPISODE_COLUMNS)
        self.tracker = tracker  # a ppo_pipeline.run.tracking.Tracker (--track) or None
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_path / "tb"), purge_step=purge_step)

    @classmethod
    def for_run(cls, cfg: Any, run_path: Path, purge_step: int | None = None) -> RunLogger:
        """The logger a run's config asks for: TensorBoard unless ``--no-tensorboard``, W&B with ``--track``."""
        tracker = None
        if cfg.track:
            from .tracking import Tracker

            tracker = Tracker(cfg, run_path)
        return cls(run_path, cfg.tensorboard, purge_step=purge_step, tracker=tracker)

    def log_update(self, row: dict) -> None:
        self.metrics.write([row])
        if self.tracker is not None:
            self.tracker.log_update(row)
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("update", "step") and isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, row["step"])

    def log_episodes(self, steps: list, returns: list, lengths: list) -> None:
        self.episodes.write({"step": s, "return": r, "length": n} for s, r, n in zip(steps, returns, lengths))
        if self.tb is not None:
            for s, r in zip(steps, returns):
                self.tb.add_scalar("episode/return", r, s)

    def log_new_episodes(self, log: Any, since: int) -> tuple[dict[str, Any], int]:
        """Log the episodes of an :class:`ppo_pipeline.algo.collect.EpisodeLog` from index ``since`` on; returns
        the metrics row's episode columns and the new count of logged episodes."""
        new = slice(since, len(log.returns))
        self.log_episodes(log.steps[new], log.returns[new], log.lengths[new])
        return episode_row(log.returns[new], log.lengths[new], log.returns[-100:]), len(log.returns)

    def log_video(self, cfg: Any, agent: Any, obs_norm: Any, update: int, step: int) -> Path:
        """``--capture-video``: record an evaluation's first episode to ``videos/update-N.mp4``, shown
        in TensorBoard and (``--track``) W&B."""
        from .video import record_evaluation_video

        path = self.run_path / "videos" / f"update-{update:08d}.mp4"
        record_evaluation_video(cfg, agent, obs_norm, path, writer=self.tb, step=step)
        if self.tracker is not None:
            self.tracker.log_video(path, step)
        return path

    def flush(self) -> None:
        if self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
        if self.tracker is not None:
            self.tracker.finish()


def progress_bar(cfg: Any, initial: int, *, members: int = 1, desc: str | None = None) -> tqdm:
    """The run's tqdm bar over agent steps, of every member of a pack (off with ``--no-progress``; a line per 30 s
    into a log file)."""
    return tqdm(
        total=cfg.steps_run * members,
        initial=initial * members,
        disable=not cfg.progress,
        unit="step",
        dynamic_ncols=True,
        desc=desc or cfg.run_name(),
        mininterval=0.5 if sys.stderr.isatty() else 30.0,
    )


def show_progress(bar: tqdm, row: dict[str, Any] | None, steps: int) -> None:
    """Move the bar to ``steps``; with a (solo run's) ``row``, show its steps/s and last-100 return."""
    bar.update(steps - bar.n)
    if row is not None and not bar.disable:  # (a rank other than 0 logs no row: its bar is off)
        ret = row["return_mean_100"]
        bar.set_postfix(sps=f"{row['sps']:.0f}", ret100="-" if ret is None else f"{ret:.1f}")


def episode_row(returns: list, lengths: list, last100: list) -> dict[str, Any]:
    """The episode columns of a metrics row: the episodes that ended in this update, and the mean of
    the last 100 training episodes (the paper's score) so far."""
    if not returns:
        row: dict[str, Any] = {"episodes": 0}
    else:
        row = {
            "episodes": len(returns),
            "episode_return_mean": float(np.mean(returns)),
            "episode_return_min": float(np.min(returns)),
            "episode_return_max": float(np.max(returns)),
            "episode_length_mean": float(np.mean(lengths)),
        }
    row["return_mean_100"] = float(np.mean(last100)) if last100 else None
    return row


def timing_split(phases: dict[str, float], time_env: float, time_policy: float) -> dict[str, float]:
    """Seconds of this process in env stepping, policy inference, the rest of collection, GAE, the
    update and evaluation (``phases`` holds collect / gae / update / eval; the collector the other two)."""
    return {
        "env": round(time_env, 3),
        "policy": round(time_policy, 3),
        "collect_other": round(phases.get("collect", 0.0) - time_env - time_policy, 3),
        "gae": round(phases.get("gae", 0.0), 3),
        "update": round(phases.get("update", 0.0), 3),
        "eval": round(phases.get("eval", 0.0), 3),
        **({"collectives": round(phases["collectives"], 3)} if "collectives" in phases else {}),
    }


def run_summary(
    cfg: Any,
    *,
    updates: int,
    total_steps: int,
    returns: list,
    last_eval: list | None,
    wall_time_s: float,
    checkpoint: Path | None,
    timing: dict[str, float],
) -> dict[str, Any]:
    """The content of ``summary.json``: status, final evaluation, the paper's last-100 score, the mean
    over all training episodes (Table 2), wall time, newest checkpoint and the time split."""
    last100 = returns[-100:]
    return {
        "env_id": cfg.env_id,
        "objective": cfg.objective,
        "seed": cfg.seed,
        "status": "finished" if updates == cfg.num_updates else "partial",
        "updates": updates,
        "total_steps": total_steps,
        "final_eval_return_mean": float(np.mean(last_eval)) if last_eval else None,
        "final_eval_returns": last_eval,
        "last100_return_mean": float(np.mean(last100)) if last100 else None,
        "train_return_mean_all": float(np.mean(returns)) if returns else None,
        "episodes": len(returns),
        "wall_time_s": round(wall_time_s, 2),
        "checkpoint": checkpoint.name if checkpoint else "",  # relative to the run directory
        "timing_s": timing,
    }
