"""Env seeds: every env of every run gets its own, derived from the run seed, never shared.

A run seed is any integer in [0, 2^32) (numpy's, and so gymnasium's, seed range; :data:`RUN_SEEDS`).
Seeds up to ``MAX_SEED`` = 10 000 ("small") keep the streams every version of this package gave them,
so the committed results stay reproducible; larger seeds get their own block above 2^31:

=====================  ================================================================  ====================
envs                   seed of env i (run seed s)                                        range
=====================  ================================================================  ====================
training, small s      ``s * SEED_STRIDE + i``                                           [0, 1.0001e9)
evaluation, small s    ``s * SEED_STRIDE + EVAL_OFFSET + i``                             [0, 1.0001e9)
after a resume         ``RESUME_BASE + SeedSequence((s, update, RESUME_TAG))[i] % 2^30``  [2^30, 2^31)
training, large s      ``LARGE_BASE + s * SEED_STRIDE + i``                              [2^31, 2^49)
evaluation, large s    ``LARGE_BASE + s * SEED_STRIDE + EVAL_OFFSET + i``                [2^31, 2^49)
=====================  ================================================================  ====================

Integer arithmetic keeps training and evaluation seeds disjoint across run seeds and from each other
while a run has at most ``EVAL_OFFSET`` envs of each kind (:func:`check`): run s owns the block
[s * SEED_STRIDE, (s + 1) * SEED_STRIDE), shifted by ``LARGE_BASE`` for a large s, and the blocks of the
small seeds end below ``RESUME_BASE`` while those of the large ones start at ``LARGE_BASE`` = 2^31, so no
two rows of the table ever share a value. Envs that cannot be snapshotted (subprocess workers, envpool,
torchrl) restart their episodes when a run resumes; their new seeds come from numpy's ``SeedSequence`` keyed
by the run seed and the update, for any run seed in the upper half of envpool's int32 range, so they can
never be a training or evaluation seed of any run.

Backends whose seeds are 32-bit (envpool: int32; dm_control: ``RandomState``'s uint32) take a large seed's
env seed ``x`` >= 2^31 as :func:`fit_int32` ``(x)``: ``FOLD_BASE + SeedSequence((x, FOLD_TAG))[0] % FOLD_SIZE``,
in the gap [1.0001e9, 2^30) between the small seeds' blocks and the resume seeds, so still never a small
seed's or a resume seed; two large seeds' folded seeds meet only by chance (2^-26 for a pair of envs). The
gymnasium backend takes every seed as it is (its ``SeedSequence`` takes any non-negative int).

A seed above 10 000 was refused before issue 26 added the large rows; the rows of seeds 0..10 000 are
the ones every version had, so the runs in ``results/`` reproduce with the seeds they name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..config import MAX_RUN_SEED
from ..errors import ConfigError

SEED_STRIDE = 100_000
EVAL_OFFSET = 50_000
MAX_SEED = 10_000  # the last small seed: MAX_SEED * SEED_STRIDE + SEED_STRIDE <= FOLD_BASE < RESUME_BASE
RUN_SEEDS = range(MAX_RUN_SEED + 1)  # [0, 2^32): every run seed accepted
RESUME_BASE = 2**30
RESUME_TAG = 0x5E5E  # a third word of the SeedSequence key: resume seeds are their own stream
LARGE_BASE = 2**31  # above every small seed's block and every resume seed
FOLD_BASE = (MAX_SEED + 1) * SEED_STRIDE
FOLD_SIZE = RESUME_BASE - FOLD_BASE  # 73 641 824 int32 values no small seed or resume seed takes
FOLD_TAG = 0xF01D
INT32_MAX = 2**31 - 1


def env_seeds(seed: int, n: int, *, evaluation: bool = False) -> list[int]:
    """Seeds (non-negative ints) of ``n`` envs of run ``seed`` (any int in :data:`RUN_SEEDS`), for training
    or ``evaluation``; disjoint across run seeds and between training and evaluation (``n <= EVAL_OFFSET``)."""
    base = seed * SEED_STRIDE + (EVAL_OFFSET if evaluation else 0) + (LARGE_BASE if seed > MAX_SEED else 0)
    return [base + i for i in range(n)]


def resume_seeds(seed: int, update: int, n: int) -> list[int]:
    """Seeds for ``n`` envs that restart their episodes when run ``seed`` resumes after ``update``:
    in [2^30, 2^31), so never one of :func:`env_seeds`; different for every (seed, update)."""
    words = np.random.SeedSequence([seed, update, RESUME_TAG]).generate_state(n, dtype=np.uint32)
    return [RESUME_BASE + int(w) % RESUME_BASE for w in words]


def fit_int32(seeds: Sequence[int]) -> list[int]:
    """``seeds`` for a backend with int32 seeds: one below 2^31 (a small run seed's, a resume seed) as it is,
    a large run seed's folded into [FOLD_BASE, RESUME_BASE) (module docstring). Deterministic."""
    return [
        int(x)
        if x <= INT32_MAX
        else FOLD_BASE + int(np.random.SeedSequence([int(x), FOLD_TAG]).generate_state(1)[0]) % FOLD_SIZE
        for x in seeds
    ]


def check(seed: int, num_envs: int, eval_episodes: int) -> None:
    """Raise :class:`ConfigError` (one line) when a run's env seeds could meet another run's."""
    if seed not in RUN_SEEDS:
        raise ConfigError(f"seed={seed} must be in [0, {MAX_RUN_SEED}] (0 to 2**32 - 1)")
    for name, v in (("num_envs", num_envs), ("eval_episodes", eval_episodes)):
        if v > EVAL_OFFSET:
            raise ConfigError(f"{name}={v} must be <= {EVAL_OFFSET} (env seeds of a run stay disjoint)")
