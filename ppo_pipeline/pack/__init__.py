"""Packs: many runs as one computation (``--pack N``): which runs can share (:mod:`.plan`), how their stages
stack (:mod:`.stacking`: :data:`STACKING`), and their directories (:mod:`.members`). The algorithm, its loop and
its checkpoints are the solo run's, at P members (:mod:`ppo_pipeline.algo.ppo`)."""

from .stacking import STACKING

__all__ = ["STACKING"]
