"""Run outputs: ``metrics.csv`` (one row per update), ``episodes.csv`` (one row per finished training
episode), TensorBoard events, ``summary.json``; and readers for them.

Columns of ``metrics.csv`` (the wall-clock columns ``sps`` and ``time_s`` are the only ones that differ
between two CPU runs of the same seed):
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable

METRIC_COLUMNS = [
    "update", "step",
    "episode_return_mean", "episode_return_min", "episode_return_max", "episode_length_mean", "episodes",
    "return_mean_100",
    "policy_loss", "value_loss", "entropy", "approx_kl", "kl", "clip_fraction", "explained_variance",
    "lr", "clip_epsilon", "kl_beta",
    "eval_return_mean",
    "sps", "time_s",
]
TIMING_COLUMNS = ("sps", "time_s")
EPISODE_COLUMNS = ["step", "return", "length"]

__doc__ += "\n" + ", ".join(f"``{c}``" for c in METRIC_COLUMNS) + "\n"


def _fmt(v: Any) -> str:
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
            path.write_text(",".join(columns) + "\n")

    def write(self, rows: Iterable[dict]) -> None:
        with self.path.open("a", newline="") as f:
            for row in rows:
                f.write(",".join(_fmt(row.get(c)) for c in self.columns) + "\n")

    def rows(self) -> int:
        with self.path.open() as f:
            return max(sum(1 for _ in f) - 1, 0)

    def truncate(self, n: int) -> None:
        lines = self.path.read_text().splitlines(keepends=True)
        self.path.write_text("".join(lines[: n + 1]))


class RunLogger:
    """metrics.csv + episodes.csv + TensorBoard for one run directory."""

    def __init__(self, run_path: Path, tensorboard: bool = True, purge_step: int | None = None):
        self.metrics = CsvLog(run_path / "metrics.csv", METRIC_COLUMNS)
        self.episodes = CsvLog(run_path / "episodes.csv", EPISODE_COLUMNS)
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_path / "tb"), purge_step=purge_step)

    def log_update(self, row: dict) -> None:
        self.metrics.write([row])
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("update", "step") and isinstance(v, (int, float)) and v is not None and math.isfinite(v):
                    self.tb.add_scalar(k, v, row["step"])

    def log_episodes(self, steps: list, returns: list, lengths: list) -> None:
        self.episodes.write({"step": s, "return": r, "length": n} for s, r, n in zip(steps, returns, lengths))
        if self.tb is not None:
            for s, r in zip(steps, returns):
                self.tb.add_scalar("episode/return", r, s)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()


def write_summary(path: Path, summary: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    tmp.replace(path)


def read_csv(path: Path) -> list[dict]:
    """Rows as dicts of floats (empty cells -> NaN)."""
    with Path(path).open() as f:
        return [{k: (float(v) if v not in ("", None) else math.nan) for k, v in row.items()} for row in csv.DictReader(f)]
