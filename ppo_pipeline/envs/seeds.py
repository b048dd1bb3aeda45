"""Env seeds: every env of every run gets its own, derived from the run seed, never shared.

=====================  ==========================================================  ====================
envs                   seed of env i (run seed s)                                  range
=====================  ==========================================================  ====================
training               ``s * SEED_STRIDE + i``                                     [0, 2^30)
evaluation (and play)  ``s * SEED_STRIDE + EVAL_OFFSET + i``                       [0, 2^30)
after a resume         ``RESUME_BASE + SeedSequence((s, update, RESUME_TAG))[i]``  [2^30, 2^31)
=====================  ==========================================================  ====================

Integer arithmetic keeps training and evaluation seeds disjoint across run seeds and from each other
while a run has at most ``EVAL_OFFSET`` envs of each kind and ``s <= MAX_SEED`` (:func:`check`). Envs
that cannot be snapshotted (subprocess workers, envpool, torchrl) restart their episodes when a run
resumes; their new seeds come from numpy's ``SeedSequence`` keyed by the run seed and the update, put in
the upper half of envpool's int32 range, so they can never be a training or evaluation seed of any run.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError

SEED_STRIDE = 100_000
EVAL_OFFSET = 50_000
MAX_SEED = 10_000            # MAX_SEED * SEED_STRIDE + SEED_STRIDE < RESUME_BASE
RESUME_BASE = 2**30
RESUME_TAG = 0x5E5E          # a third word of the SeedSequence key: resume seeds are their own stream


def env_seeds(seed: int, n: int, *, evaluation: bool = False) -> list[int]:
    """Per-env seeds derived from the run seed; disjoint across seeds and between train and eval."""
    base = seed * SEED_STRIDE + (EVAL_OFFSET if evaluation else 0)
    return [base + i for i in range(n)]


def resume_seeds(seed: int, update: int, n: int) -> list[int]:
    """Seeds for ``n`` envs that restart their episodes when run ``seed`` resumes after ``update``:
    in [2^30, 2^31), so never one of :func:`env_seeds`; different for every (seed, update)."""
    words = np.random.SeedSequence([seed, update, RESUME_TAG]).generate_state(n, dtype=np.uint32)
    return [RESUME_BASE + int(w) % RESUME_BASE for w in words]


def check(seed: int, num_envs: int, eval_episodes: int) -> None:
    """Raise :class:`ConfigError` (one line) when a run's env seeds could meet another run's."""
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed={seed} must be in [0, {MAX_SEED}] (every run's env seeds stay disjoint)")
    for name, v in (("num_envs", num_envs), ("eval_episodes", eval_episodes)):
        if v > EVAL_OFFSET:
            raise ConfigError(f"{name}={v} must be <= {EVAL_OFFSET} (env seeds of a run stay disjoint)")
