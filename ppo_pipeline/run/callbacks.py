"""Hooks into a run, so that adding a metric or stopping early needs no copy of the loop (SB3's callbacks).

Pass instances to :class:`ppo_pipeline.run.trainer.Trainer` (or ``ppo_pipeline.train(..., callbacks=[...])``).
A hook that returns ``False`` stops the run after the update in flight, with a checkpoint, as a signal
would: ``--resume`` continues it. Rows may be extended (a key of your own goes to TensorBoard and W&B;
``metrics.csv`` keeps its fixed columns).
"""

from __future__ import annotations

from typing import Any

Trainer = Any   # ppo_pipeline.run.trainer.Trainer (not imported: the trainer imports this module)


class Callback:
    """Override what you need; every hook is optional."""

    def on_update(self, trainer: Trainer, row: dict[str, Any]) -> bool | None:
        """After each update, with its metrics row (``update``, ``step``, losses, episode returns, ...)."""
        return None

    def on_evaluation(self, trainer: Trainer, update: int, returns: list[float]) -> bool | None:
        """After each evaluation, with each evaluation episode's return."""
        return None


class StopAfter(Callback):
    """Stop after ``updates`` updates (a clean stop with a checkpoint, as tests and short trials want)."""

    def __init__(self, updates: int):
        self.updates = updates

    def on_update(self, trainer: Trainer, row: dict[str, Any]) -> bool | None:
        return row["update"] < self.updates
