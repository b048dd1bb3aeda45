"""Statistics across seeds: mean, sample std, IQM and its percentile-bootstrap confidence interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def iqm(x: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: sort the n values, drop k = floor(n/4) from each end, average the rest.

    Agarwal et al. 2021 (rliable: ``scipy.stats.trim_mean(x, proportiontocut=0.25)``). For n < 4 no
    value is dropped and the IQM is the mean.
    """
    a = np.sort(np.asarray(x, dtype=float))
    n = len(a)
    if n == 0:
        return math.nan
    k = n // 4
    return float(a[k : n - k].mean())


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each row of a [B, n] array."""
    n = samples.shape[1]
    k = n // 4
    return np.sort(samples, axis=1)[:, k : n - k].mean(axis=1)


def bootstrap_ci(
    groups: Sequence[Sequence[float]] | Sequence[float], n_boot: int = 2000, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float]:
    """Percentile-bootstrap CI of the IQM.

    ``groups`` is one list of scores, or a list of lists (one per env) for a stratified bootstrap:
    each resample draws n_g values with replacement from every group g, pools them and takes the
    IQM. The interval is the ((1-c)/2, (1+c)/2) percentiles of the ``n_boot`` resampled IQMs. The RNG
    is ``numpy.random.default_rng(seed)``, so the interval is reproducible.
    """
    flat = len(groups) and not isinstance(groups[0], (list, tuple, np.ndarray))
    rows: Sequence[Any] = [groups] if flat else groups
    arrays = [np.asarray(g, dtype=float) for g in rows if len(g)]
    if not arrays:
        return math.nan, math.nan
    if n_boot <= 0:
        v = iqm(np.concatenate(arrays))
        return v, v
    rng = np.random.default_rng(seed)
    parts = [a[rng.integers(0, len(a), size=(n_boot, len(a)))] for a in arrays]
    stats = _iqm_rows(np.concatenate(parts, axis=1))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def mean(x: Iterable[float]) -> float:
    a = np.asarray(list(x), dtype=float)
    return float(a.mean()) if len(a) else math.nan


def std(x: Iterable[float]) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than 2 values."""
    a = np.asarray(list(x), dtype=float)
    return float(a.std(ddof=1)) if len(a) > 1 else math.nan
