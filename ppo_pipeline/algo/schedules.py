"""Schedules: a hyperparameter's value at update k of K (k = 1..K), and the KL-adaptive step size.

Table 5 (Atari) anneals the step size and the clipping parameter with alpha, linearly from 1 to 0 over
training: at update k, ``alpha = 1 - (k - 1) / K`` (so the first update trains with the full values and
the last with 1/K of them). Table 3 (MuJoCo) keeps both constant. ``cfg.anneal`` picks one or the other.

Table 4 (the Roboschool humanoids, Sec. 6.3) has two more:

* the action distribution's log stdev is ``LinearAnneal(-0.7, -1.6)``: :class:`LinearAnneal` with a ``final``
  value, ``final + (value - final) * alpha`` (``cfg.log_std = "anneal"``);
* the Adam step size is "adjusted based on the target value of the KL divergence": :class:`KLAdaptiveStepSize`,
  the rule of the paper's footnote (Schulman's homework code, "Add adaptive stepsize"; rsl_rl's
  ``schedule="adaptive"`` is the same rule, bounded): after an update with mean KL d,

      d > 2 d_targ   ->  lr <- lr / 1.5
      d < d_targ / 2 ->  lr <- lr * 1.5          then lr <- clamp(lr, lr_min, lr_max)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KL_STEP_FACTOR = 1.5  # Schulman's homework code (the paper's footnote) and rsl_rl: x or / 1.5 per update


@dataclass(frozen=True)
class Constant:
    """value at every update."""

    value: float

    def __call__(self, update: int) -> float:
        return self.value


@dataclass(frozen=True)
class LinearAnneal:
    """``final + (value - final) x alpha``, alpha = 1 - (update - 1) / num_updates (Table 5: "alpha annealed
    linearly 1 -> 0", ``final`` 0; Table 4: the log stdev's ``LinearAnneal(-0.7, -1.6)``)."""

    value: float
    num_updates: int
    final: float = 0.0

    def __call__(self, update: int) -> float:
        alpha = 1.0 - (update - 1) / self.num_updates
        return self.final + (self.value - self.final) * alpha


class KLAdaptiveStepSize:
    """The Adam step size of Table 4: starts at ``initial``, moved after each update by :meth:`adapt` (module
    docstring). ``self(update)`` is the value the update trains with (the update number plays no part)."""

    def __init__(self, initial: float, kl_target: float, lr_min: float, lr_max: float):
        self.value, self.kl_target, self.lr_min, self.lr_max = float(initial), kl_target, lr_min, lr_max

    def __call__(self, update: int) -> float:
        return self.value

    def factor(self, kl: float) -> float:
        """The rule's factor for a mean KL of ``kl``: 1 / 1.5, 1.5 or 1 (before the bounds)."""
        if kl > 2.0 * self.kl_target:
            return 1.0 / KL_STEP_FACTOR
        if kl < self.kl_target / 2.0:
            return KL_STEP_FACTOR
        return 1.0

    def adapt(self, kl: float) -> float:
        """After an update whose mean KL[pi_old, pi] was ``kl``: the step size of the next one."""
        self.value = min(max(self.value * self.factor(kl), self.lr_min), self.lr_max)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["value"])


Schedule = Constant | LinearAnneal


def schedule(value: float, *, anneal: bool, num_updates: int) -> Schedule:
    """``value`` annealed with alpha (``anneal``) or constant."""
    return LinearAnneal(value, num_updates) if anneal else Constant(value)


def step_size(cfg: Any) -> Schedule | KLAdaptiveStepSize:
    """The run's Adam step size per update: ``cfg.lr`` x alpha (``lr_schedule`` alpha) or the KL-adaptive rule."""
    if cfg.lr_schedule == "kl_adaptive":
        return KLAdaptiveStepSize(cfg.lr, cfg.lr_kl_target, cfg.lr_min, cfg.lr_max)
    return schedule(cfg.lr, anneal=cfg.anneal, num_updates=cfg.num_updates)


def log_std(cfg: Any) -> LinearAnneal | None:
    """The log stdev of a Box action's Gaussian per update (``cfg.log_std`` anneal), None where it is learned."""
    if cfg.log_std != "anneal":
        return None
    return LinearAnneal(cfg.log_std_init, cfg.num_updates, final=cfg.log_std_final)
