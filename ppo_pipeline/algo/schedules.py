"""Schedules: a hyperparameter's value at update k of K (k = 1..K).

Table 5 (Atari) anneals the step size and the clipping parameter with alpha, linearly from 1 to 0 over
training: at update k, ``alpha = 1 - (k - 1) / K`` (so the first update trains with the full values and
the last with 1/K of them). Table 3 (MuJoCo) keeps both constant. ``cfg.anneal`` picks one or the other.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constant:
    """value at every update."""

    value: float

    def __call__(self, update: int) -> float:
        return self.value


@dataclass(frozen=True)
class LinearAnneal:
    """value x alpha, alpha = 1 - (update - 1) / num_updates (Table 5: "alpha annealed linearly 1 -> 0")."""

    value: float
    num_updates: int

    def __call__(self, update: int) -> float:
        return self.value * (1.0 - (update - 1) / self.num_updates)


Schedule = Constant | LinearAnneal


def schedule(value: float, *, anneal: bool, num_updates: int) -> Schedule:
    """``value`` annealed with alpha (``anneal``) or constant."""
    return LinearAnneal(value, num_updates) if anneal else Constant(value)
