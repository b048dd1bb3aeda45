"""Packs: many runs as one computation (``--pack N``): which runs can share (:mod:`.plan`), how their stages
stack (:mod:`.stacking`: :data:`STACKING`), and their directories (:mod:`.members`). The algorithm, its loop and
its checkpoints are the solo run's, at P members (:mod:`ppo_pipeline.algo.ppo`)."""

from __future__ import annotations

from typing import Any

__all__ = ["STACKING"]


def __getattr__(name: str) -> Any:
    """:data:`STACKING` imported when first asked for: planning a pack (``--dry-run``, ``--help``, a refused
    input) needs no torch."""
    if name == "STACKING":
        from .stacking import STACKING

        return STACKING
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
