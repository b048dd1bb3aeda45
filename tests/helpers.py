"""Small shared helpers for the tests (no fixtures with side effects)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ppo_pipeline import config
from ppo_pipeline.run.prepare import prepare


def tiny(preset=config.classic, tmp: Path | None = None, **kw) -> config.Config:
    """A resolved, validated config with a small budget, no TensorBoard and no progress bar."""
    base = dict(progress=False, tensorboard=False, run_dir=str(tmp) if tmp else "runs")
    base.update(kw)
    cfg = preset(**base)
    if "minibatch_size" not in kw:
        cfg.minibatch_size = min(cfg.minibatch_size, cfg.batch_size)
    if "total_steps" not in kw:
        cfg.total_steps = cfg.batch_size * 2
    return prepare(cfg)


def replace(cfg: config.Config, **kw) -> config.Config:
    return dataclasses.replace(cfg, **kw)
