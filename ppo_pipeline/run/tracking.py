"""Weights & Biases tracking (``--track``): the config, every ``metrics.csv`` column, the episode
returns and the evaluation videos of a run, as one W&B run. An optional extra: ``pip install -e
.[wandb]``. ``WANDB_MODE=offline`` keeps everything on disk (under ``<run>/wandb/``), which is how the
tests check it; ``wandb sync`` uploads it later.

The W&B run id is derived from the run directory, so a resumed run continues the same W&B run; sweep
runs are grouped by the sweep (``--wandb-group``, default: the sweep directory's name).
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path
from typing import Any

from ..errors import ConfigError


def check_available() -> None:
    """Raise :class:`ConfigError` (one line) when wandb is not installed."""
    if importlib.util.find_spec("wandb") is None:
        raise ConfigError(
            "--track needs Weights & Biases, which is not installed: pip install -e .[wandb] (or pip install wandb)"
        )


def run_id(run_path: Path) -> str:
    """A W&B run id stable for a run directory (the same after a resume)."""
    return hashlib.sha1(str(run_path.resolve()).encode()).hexdigest()[:16]


class Tracker:
    """One W&B run for one ppo-pipeline run."""

    def __init__(self, cfg: Any, run_path: Path):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(
            project=cfg.wandb_project,
            entity=cfg.wandb_entity or None,
            group=cfg.wandb_group or None,
            name=cfg.run_name(),
            id=run_id(run_path),
            resume="allow",
            dir=str(run_path),
            config=cfg.to_dict(),
            reinit=True,
        )

    def log_update(self, row: dict[str, Any]) -> None:
        """Every column of the metrics row (empty ones left out), at the row's env step."""
        data = {k: v for k, v in row.items() if isinstance(v, (int, float)) and v is not None and math.isfinite(v)}
        self.run.log(data, step=int(row["step"]))

    def log_video(self, path: Path, step: int) -> None:
        self.run.log({"eval/video": self.wandb.Video(str(path), format="mp4")}, step=step)

    def finish(self) -> None:
        self.run.finish()
