"""Learning curves: per env, the mean over seeds of binned training-return curves with a seed band."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .aggregate import Group
from .random_policy import RandomScore


def binned_curve(steps: np.ndarray, returns: np.ndarray, edges: np.ndarray, reached: float) -> np.ndarray:
    """Mean return of the episodes that ended in each step bin [edges[i], edges[i+1]).

    A bin without an episode inside the run's range repeats the previous bin's value (NaN before the
    first episode); bins that start at or after ``reached`` (the run's last step) are NaN, so a run
    in progress draws only as far as it got.
    """
    nb = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, nb - 1)
    sums = np.bincount(idx, weights=returns, minlength=nb)
    counts = np.bincount(idx, minlength=nb)
    out = np.full(nb, math.nan)
    last = math.nan
    for i in range(nb):
        if counts[i]:
            last = sums[i] / counts[i]
        out[i] = last
    out[edges[:-1] >= reached] = math.nan
    return out


def plot_curves(
    groups: Sequence[Group], random: dict[str, RandomScore], out: Path, bins: int = 50, band: str = "minmax"
) -> list[Path]:
    """``curves.png`` (one panel per env) and ``curves-<env>.png``: per variant the mean over seeds of
    the binned return curves and a band (min-max over seeds, or mean +- std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({g.env_id for g in groups})
    variants = sorted({g.variant: g.key for g in groups}.items(), key=lambda kv: kv[1])
    # up to 10 variants: tab10; more (Table 1 has 11 rows): tab20, so that no two variants share a color
    cmap = plt.get_cmap("tab10" if len(variants) <= 10 else "tab20")
    colors = {v: cmap(i % cmap.N) for i, (v, _) in enumerate(variants)}

    def draw(ax: Any, env_id: str) -> None:
        env_groups = [g for g in groups if g.env_id == env_id]
        top = max(r.reached_step for g in env_groups for r in g.runs)
        edges = np.linspace(0.0, float(top), bins + 1)
        x = (edges[:-1] + edges[1:]) / 2
        for g in env_groups:
            curves = np.stack([binned_curve(r.steps, r.returns, edges, r.reached_step) for r in g.runs])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN bins stay NaN
                mean = np.nanmean(curves, axis=0)
                if band == "std":
                    sd = np.nan_to_num(np.nanstd(curves, axis=0))
                    lo, hi = mean - sd, mean + sd
                else:
                    lo, hi = np.nanmin(curves, axis=0), np.nanmax(curves, axis=0)
            label = f"{g.variant} (n={len(g.runs)}{', in progress' if g.in_progress else ''})"
            ax.plot(x, mean, color=colors[g.variant], lw=1.6, label=label)
            ax.fill_between(x, lo, hi, color=colors[g.variant], alpha=0.2, lw=0)
        rs = random.get(env_id)
        if rs is not None and math.isfinite(rs.value):
            ax.axhline(rs.value, color="0.4", ls="--", lw=1, label="random policy")
        ax.set_title(env_id)
        ax.set_xlabel("env steps")
        ax.set_ylabel("episode return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")

    written = []
    cols = min(3, len(envs))
    rows = math.ceil(len(envs) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.8 * rows), squeeze=False)
    for ax, env_id in zip(axes.flat, envs):
        draw(ax, env_id)
    for ax in list(axes.flat)[len(envs) :]:
        ax.axis("off")
    fig.suptitle(f"training episode return, mean over seeds ({'min-max' if band == 'minmax' else '+-std'} band)")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    plt.close(fig)
    written.append(out / "curves.png")
    for env_id in envs:
        fig, ax = plt.subplots(figsize=(6, 4))
        draw(ax, env_id)
        fig.tight_layout()
        path = out / f"curves-{_slug(env_id)}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _slug(env_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in env_id)
