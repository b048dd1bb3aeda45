"""Report over run directories: the paper's scores across seeds, Table 1's normalized score, curves.

    python -m ppo_pipeline.report DIR [DIR ...] --out OUT

Every directory below a DIR that holds a ``config.json`` is a run (a sweep directory is searched
recursively; its manifest is not needed). A directory holding ``metrics.csv`` or ``episodes.csv``
without a readable ``config.json`` is a broken run. Runs without a finished ``summary.json`` are read
as they stand and marked *in progress* (or *stopped* when a sweep's ``job.json`` says the job failed
or was interrupted); broken runs are skipped and named in ``report.md`` and on stderr.

Groups and scores (paper: Schulman et al. 2017, Sec. 6.1 / Table 1 and Sec. 6.2 / Table 2):

* variant = objective plus the hyperparameter that distinguishes it in Table 1, read from
  ``config.json``: ``clip eps=<clip_epsilon>``, ``kl_adaptive d_targ=<kl_target>``,
  ``kl_fixed beta=<kl_beta>``, ``none``.
* score of a run s = mean return of its last 100 finished training episodes (raw score,
  ``episodes.csv``; all of them when it has fewer than 100).
* across the n seeds of an (env, variant): mean, sample std (ddof = 1), and
  IQM = mean of the sorted scores after dropping floor(n/4) from each end (interquartile mean,
  Agarwal et al. 2021, ``scipy.stats.trim_mean(x, 0.25)``), with a percentile-bootstrap 95% CI:
  resample the n scores with replacement B times (``--bootstrap B``, a fixed-seed RNG), take the
  2.5 and 97.5 percentiles of the B IQMs.
* Table 2 pair: average episode return over all of training (mean of every row of
  ``episodes.csv``) and over the last 100 episodes, each averaged over seeds.
* Table 1 normalized score, per env e:
      norm(run) = (s(run) - r_e) / (b_e - r_e)
  with r_e the random-policy score of e (mean over e's seeds of the mean return of
  ``--random-episodes`` episodes of uniform random actions, same env stack and env seeds as
  training: ``config.env_seeds(seed, num_envs)``) and b_e = max over the compared variants v of
  mean_{runs of v on e} s(run). A variant's normalized score is the mean of norm(run) over its runs:
  on each env the best variant scores exactly 1 and random play 0. The last column of Table 1
  averages over all runs of the variant on all envs (the paper's "averaged over 21 runs").

Outputs in OUT: ``report.md`` (tables), ``report.csv`` (one row per env and variant), ``runs.csv``
(one row per run), ``curves.png`` (one panel per env) and ``curves-<env>.png``, and
``random_scores.json`` (the cache of measured random-policy scores).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence, TextIO

import numpy as np

from .cli import OneLineParser
from .evaluation import random_score
from .config import OBJECTIVES, Config
from .metrics import EPISODE_COLUMNS
from .rundir import JOB_STATE, BrokenRun, read_table

RUN_FILES = ("config.json", "metrics.csv", "episodes.csv")
LAST_N = 100                     # the paper's final score: mean of the last 100 episodes
# Paper's Table 1 row order: no clipping or penalty, clipping, adaptive KL, fixed KL.
OBJECTIVE_ORDER = {"none": 0, "clip": 1, "kl_adaptive": 2, "kl_fixed": 3}
# Config fields that do not change what a run learns; runs of one group may differ in these freely.
NEUTRAL_FIELDS = {"seed", "name", "run_dir", "device", "torch_threads", "progress", "tensorboard",
                  "vector_env", "eval_every", "eval_episodes", "eval_max_steps", "checkpoint_every"}
# Config fields that define the env stack, hence the random-policy score (the cache key).
ENV_FIELDS = ("env_id", "num_envs", "frame_skip", "noop_max", "frame_stack", "episodic_life")
RANDOM_CACHE = "random_scores.json"


class ReportError(Exception):
    """Bad input for the whole report (a DIR that does not exist, no runs); one line for the user."""


class NotARun(Exception):
    """A ``config.json`` that is not a run's (a sweep's own settings, say): ignored."""


# ------------------------------------------------------------------------------------------------------
# Statistics
# ------------------------------------------------------------------------------------------------------
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
    return float(a[k:n - k].mean())


def _iqm_rows(samples: np.ndarray) -> np.ndarray:
    """IQM of each row of a [B, n] array."""
    n = samples.shape[1]
    k = n // 4
    return np.sort(samples, axis=1)[:, k:n - k].mean(axis=1)


def bootstrap_ci(groups: Sequence[Sequence[float]] | Sequence[float], n_boot: int = 2000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile-bootstrap CI of the IQM.

    ``groups`` is one list of scores, or a list of lists (one per env) for a stratified bootstrap:
    each resample draws n_g values with replacement from every group g, pools them and takes the
    IQM. The interval is the ((1-c)/2, (1+c)/2) percentiles of the ``n_boot`` resampled IQMs. The RNG
    is ``numpy.random.default_rng(seed)``, so the interval is reproducible.
    """
    if len(groups) and not isinstance(groups[0], (list, tuple, np.ndarray)):
        groups = [groups]  # type: ignore[list-item]
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]  # type: ignore[arg-type]
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


def _mean(x: Iterable[float]) -> float:
    a = np.asarray(list(x), dtype=float)
    return float(a.mean()) if len(a) else math.nan


def _std(x: Iterable[float]) -> float:
    """Sample standard deviation (ddof = 1); NaN for fewer than 2 values."""
    a = np.asarray(list(x), dtype=float)
    return float(a.std(ddof=1)) if len(a) > 1 else math.nan


# ------------------------------------------------------------------------------------------------------
# Reading runs
# ------------------------------------------------------------------------------------------------------
def variant_of(cfg: dict[str, Any]) -> tuple[tuple[int, float], str]:
    """(sort key, label) of the run's variant: the objective and its Table 1 hyperparameter."""
    obj = cfg["objective"]
    param = {"clip": ("eps", "clip_epsilon"), "kl_adaptive": ("d_targ", "kl_target"),
             "kl_fixed": ("beta", "kl_beta")}.get(obj)
    if param is None:
        return (OBJECTIVE_ORDER[obj], 0.0), obj
    value = float(cfg[param[1]])
    return (OBJECTIVE_ORDER[obj], value), f"{obj} {param[0]}={value:g}"


@dataclass
class Run:
    """One run directory as read now."""

    path: Path
    config: dict[str, Any]
    steps: np.ndarray                 # env step at which each training episode ended
    returns: np.ndarray               # its raw return
    reached_step: int                 # env steps trained so far
    finished: bool
    last_eval: float                  # latest deterministic evaluation (metrics.csv), NaN if none
    job_state: str = ""               # a sweep job's last state (job.json) when it is not running
    notes: list[str] = field(default_factory=list)
    normalized: float = math.nan

    @property
    def env_id(self) -> str:
        return str(self.config["env_id"])

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def variant(self) -> str:
        return variant_of(self.config)[1]

    @property
    def variant_key(self) -> tuple[int, float]:
        return variant_of(self.config)[0]

    @property
    def total_steps(self) -> int:
        return int(self.config["total_steps"])

    @property
    def score(self) -> float:
        """The paper's final score: mean return of the last 100 training episodes."""
        return float(self.returns[-LAST_N:].mean())

    @property
    def train_mean(self) -> float:
        """Average episode return over all of training (Table 2, first column)."""
        return float(self.returns.mean())

    @property
    def state(self) -> str:
        """``finished``, ``in progress`` or ``stopped (<job state>)``."""
        if self.finished:
            return "finished"
        return f"stopped ({self.job_state})" if self.job_state else "in progress"

    @property
    def status(self) -> str:
        """The state with the steps reached, for the tables."""
        if self.finished:
            return "finished"
        if self.job_state:
            return f"stopped, job {self.job_state} ({self.reached_step}/{self.total_steps} steps)"
        return f"in progress ({self.reached_step}/{self.total_steps} steps)"


@dataclass
class Skipped:
    path: Path
    reason: str


def discover(dirs: Sequence[str | Path]) -> list[Path]:
    """Run directories below each DIR: those holding any of ``config.json``, ``metrics.csv``,
    ``episodes.csv`` (the ones without a config are reported as broken).

    Raises :class:`ReportError` for a DIR that does not exist or holds no run.
    """
    found: dict[Path, Path] = {}
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            raise ReportError(f"{str(d)!r} is not a directory" if root.exists() else f"{str(d)!r} does not exist")
        here = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(x for x in dirnames if x != "tb")
            if any(f in filenames for f in RUN_FILES):
                here.append(Path(dirpath))
        if not here:
            raise ReportError(f"{str(d)!r} contains no run directories (no config.json below it)")
        for p in here:
            found.setdefault(p.resolve(), p)
    return sorted(found.values(), key=lambda p: str(p))


def load_run(path: Path) -> Run:
    """Read one run directory; raise :class:`BrokenRun` naming what is wrong."""
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise BrokenRun("config.json is missing")
    try:
        raw = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BrokenRun(f"config.json is unparseable ({e.__class__.__name__})") from None
    if not isinstance(raw, dict):
        raise BrokenRun("config.json is not a JSON object")
    if not (path / "metrics.csv").exists() and not (path / "episodes.csv").exists():
        if "env_id" not in raw or "objective" not in raw:
            raise NotARun(str(path))
        raise BrokenRun("not started: no metrics.csv or episodes.csv yet")
    cfg = {**Config().to_dict(), **raw}
    if not isinstance(cfg.get("env_id"), str) or not cfg["env_id"]:
        raise BrokenRun("config.json has no env_id")
    if cfg.get("objective") not in OBJECTIVES:
        raise BrokenRun(f"config.json has an unknown objective {cfg.get('objective')!r}")
    try:
        cfg["seed"], cfg["total_steps"] = int(cfg["seed"]), int(cfg["total_steps"])
        variant_of(cfg)
    except (TypeError, ValueError):
        raise BrokenRun("config.json has a non-numeric seed, total_steps or objective parameter") from None

    summary: dict[str, Any] | None = None
    if (path / "summary.json").exists():
        try:
            summary = json.loads((path / "summary.json").read_text())
            if not isinstance(summary, dict):
                raise ValueError
        except (OSError, UnicodeDecodeError, ValueError):
            raise BrokenRun("summary.json is unparseable") from None
    finished = summary is not None and summary.get("status") == "finished"

    metrics = read_table(path / "metrics.csv", ["update", "step"], drop_partial_tail=not finished,
                          finite=["update", "step"])
    episodes = read_table(path / "episodes.csv", EPISODE_COLUMNS, drop_partial_tail=not finished,
                           finite=EPISODE_COLUMNS)
    if len(episodes["step"]) == 0:
        raise BrokenRun("no finished training episode yet (episodes.csv has no rows)")
    steps, returns = episodes["step"], episodes["return"]
    reached = int(max(metrics["step"].max(initial=0.0), steps.max()))
    evals = metrics.get("eval_return_mean", np.array([]))
    evals = evals[np.isfinite(evals)]
    run = Run(path=path, config=cfg, steps=steps, returns=returns, reached_step=reached, finished=finished,
              last_eval=float(evals[-1]) if len(evals) else math.nan)
    if not finished and (path / JOB_STATE).is_file():
        try:
            state = str(json.loads((path / JOB_STATE).read_text()).get("state", ""))
        except (OSError, ValueError, AttributeError):
            state = ""
        if state in ("FAILED", "INTERRUPTED", "REQUEUED"):
            run.job_state = state
    if finished and summary is not None:
        want = summary.get("last100_return_mean")
        if isinstance(want, (int, float)) and not math.isclose(want, run.score, rel_tol=1e-6, abs_tol=1e-6):
            run.notes.append(f"episodes.csv gives last-100 mean {run.score:.6g} but summary.json says {want:.6g}")
    if len(returns) < LAST_N:
        run.notes.append(f"only {len(returns)} episodes: its score averages all of them, not the last {LAST_N}")
    return run


def load_runs(dirs: Sequence[str | Path]) -> tuple[list[Run], list[Skipped]]:
    runs, skipped = [], []
    for p in discover(dirs):
        try:
            runs.append(load_run(p))
        except BrokenRun as e:
            skipped.append(Skipped(p, str(e)))
        except NotARun:
            pass
    return runs, skipped


# ------------------------------------------------------------------------------------------------------
# Random-policy score
# ------------------------------------------------------------------------------------------------------
@dataclass
class RandomScore:
    env_id: str
    value: float                               # mean over seeds of the per-seed episode mean
    source: str                                # "given", "measured", "cached", or "unavailable: ..."
    per_seed: dict[int, float] = field(default_factory=dict)
    episodes: int = 0


def _cache_key(cfg: dict[str, Any], seed: int, episodes: int) -> str:
    env = {k: cfg.get(k) for k in ENV_FIELDS}
    return json.dumps({"env": env, "seed": seed, "episodes": episodes}, sort_keys=True)


def random_scores(runs: Sequence[Run], episodes: int, cache_path: Path | None,
                  given: dict[str, float] | None = None, log: TextIO | None = None) -> dict[str, RandomScore]:
    """The random-policy score r_e of every env: ``given`` ones as they are, the others measured per
    seed of that env's runs (or read from the JSON cache at ``cache_path``) and averaged over seeds.

    ``episodes=0`` measures nothing: envs without a given score get none (normalized scores n/a).
    """
    log = log or sys.stderr
    given = dict(given or {})
    cache: dict[str, float] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            for e in json.loads(cache_path.read_text())["entries"]:
                cache[_cache_key(e["env"], int(e["seed"]), int(e["episodes"]))] = float(e["score"])
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            log.write(f"warning: ignoring unreadable cache {cache_path}\n")
    by_env: dict[str, list[Run]] = {}
    for r in runs:
        by_env.setdefault(r.env_id, []).append(r)
    out: dict[str, RandomScore] = {}
    for env_id, env_runs in sorted(by_env.items()):
        if env_id in given:
            out[env_id] = RandomScore(env_id, float(given[env_id]), "given")
            continue
        if episodes <= 0:
            out[env_id] = RandomScore(env_id, math.nan, "unavailable: not measured (--random-episodes 0)")
            continue
        cfg = min(env_runs, key=lambda r: str(r.path)).config   # the env stack of this env's runs
        per_seed: dict[int, float] = {}
        sources = set()
        try:
            for seed in sorted({r.seed for r in env_runs}):
                key = _cache_key(cfg, seed, episodes)
                if key in cache:
                    per_seed[seed] = cache[key]
                    sources.add("cached")
                    continue
                log.write(f"measuring the random-policy score of {env_id}, seed {seed} ({episodes} episodes)\n")
                per_seed[seed] = cache[key] = random_score(Config.from_dict(cfg), seed, episodes)
                sources.add("measured")
        except Exception as e:  # a missing env or ROM must not sink the whole report
            msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            out[env_id] = RandomScore(env_id, math.nan, f"unavailable: {msg}")
            log.write(f"warning: random-policy score of {env_id} could not be measured: {msg}\n")
            continue
        out[env_id] = RandomScore(env_id, _mean(per_seed.values()), "measured" if "measured" in sources else "cached",
                                  per_seed, episodes)
    if cache_path is not None and cache:
        entries = [{**json.loads(k), "score": v} for k, v in sorted(cache.items())]
        cache_path.write_text(json.dumps({"about": "mean return of uniform-random-action episodes per env stack "
                                                   "and seed (python -m ppo_pipeline.report)",
                                          "entries": entries}, indent=1) + "\n")
    return out


# ------------------------------------------------------------------------------------------------------
# Aggregation
# ------------------------------------------------------------------------------------------------------
@dataclass
class Group:
    """All runs of one variant on one env, with the numbers the tables show."""

    env_id: str
    variant: str
    key: tuple[int, float]
    runs: list[Run]
    score_mean: float = math.nan
    score_std: float = math.nan
    score_iqm: float = math.nan
    iqm_ci: tuple[float, float] = (math.nan, math.nan)
    train_mean: float = math.nan
    train_std: float = math.nan
    normalized: float = math.nan
    best: bool = False

    @property
    def objective(self) -> str:
        return str(self.runs[0].config["objective"])

    @property
    def in_progress(self) -> int:
        return sum(not r.finished for r in self.runs)


@dataclass
class Report:
    dirs: list[str]
    runs: list[Run]
    skipped: list[Skipped]
    groups: list[Group]
    random: dict[str, RandomScore]
    table1: dict[str, dict[str, Any]]          # variant -> {"per_env": {env: norm}, "mean", "iqm", "ci", "runs"}
    notes: list[str]
    bootstrap: int
    files: list[Path] = field(default_factory=list)

    def group(self, env_id: str, variant: str) -> Group:
        for g in self.groups:
            if g.env_id == env_id and g.variant == variant:
                return g
        raise KeyError((env_id, variant))

    @property
    def envs(self) -> list[str]:
        return sorted({g.env_id for g in self.groups})

    @property
    def variants(self) -> list[str]:
        keys = {g.variant: g.key for g in self.groups}
        return sorted(keys, key=lambda v: keys[v])


def aggregate(runs: Sequence[Run], random: dict[str, RandomScore], n_boot: int = 2000,
              boot_seed: int = 0) -> tuple[list[Group], dict[str, dict[str, Any]], list[str]]:
    """Groups by (env, variant) with their statistics, Table 1 by variant, and notes on the data."""
    notes: list[str] = []
    by: dict[tuple[str, str], Group] = {}
    for r in sorted(runs, key=lambda r: (r.env_id, r.variant_key, r.seed, str(r.path))):
        g = by.setdefault((r.env_id, r.variant), Group(r.env_id, r.variant, r.variant_key, []))
        g.runs.append(r)
    groups = sorted(by.values(), key=lambda g: (g.env_id, g.key))
    for g in groups:
        scores = [r.score for r in g.runs]
        g.score_mean, g.score_std, g.score_iqm = _mean(scores), _std(scores), iqm(scores)
        g.iqm_ci = bootstrap_ci(scores, n_boot, boot_seed)
        g.train_mean, g.train_std = _mean(r.train_mean for r in g.runs), _std(r.train_mean for r in g.runs)
        seeds = [r.seed for r in g.runs]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            notes.append(f"{g.env_id}, {g.variant}: seed(s) {dup} appear in more than one run directory")
        differ = sorted(k for k in g.runs[0].config if k not in NEUTRAL_FIELDS
                        and len({json.dumps(r.config.get(k), sort_keys=True) for r in g.runs}) > 1)
        if differ:
            what = "; ".join(f"{k} ({', '.join(sorted({str(r.config.get(k)) for r in g.runs}))})" for k in differ)
            notes.append(f"{g.env_id}, {g.variant}: its runs differ in {what}; compare with care")

    # Table 1: per env, b_e = best variant's mean score; norm(run) = (s - r_e) / (b_e - r_e).
    for env_id in sorted({g.env_id for g in groups}):
        env_groups = [g for g in groups if g.env_id == env_id]
        best = max(env_groups, key=lambda g: g.score_mean)
        best.best = True
        r_e = random[env_id].value if env_id in random else math.nan
        denom = best.score_mean - r_e
        if math.isfinite(r_e) and denom <= 0:
            notes.append(f"{env_id}: no variant beats the random policy ({r_e:.4g}); normalized scores n/a")
        for g in env_groups:
            for r in g.runs:
                r.normalized = (r.score - r_e) / denom if math.isfinite(r_e) and denom > 0 else math.nan
            g.normalized = _mean(r.normalized for r in g.runs)
    table1: dict[str, dict[str, Any]] = {}
    for g in groups:
        t = table1.setdefault(g.variant, {"key": g.key, "per_env": {}, "values": []})
        t["per_env"][g.env_id] = g.normalized
        vals = [r.normalized for r in g.runs if math.isfinite(r.normalized)]
        if vals:
            t["values"].append(vals)
    for v, t in table1.items():
        flat = [x for vals in t["values"] for x in vals]
        t["runs"] = len(flat)
        t["envs"] = len(t["values"])
        t["mean"] = _mean(flat)
        t["iqm"] = iqm(flat)
        t["ci"] = bootstrap_ci(t["values"], n_boot, boot_seed) if flat else (math.nan, math.nan)
    return groups, table1, notes


# ------------------------------------------------------------------------------------------------------
# Curves
# ------------------------------------------------------------------------------------------------------
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


def plot_curves(groups: Sequence[Group], random: dict[str, RandomScore], out: Path, bins: int = 50,
                band: str = "minmax") -> list[Path]:
    """``curves.png`` (one panel per env) and ``curves-<env>.png``: per variant the mean over seeds of
    the binned return curves and a band (min-max over seeds, or mean +- std)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = sorted({g.env_id for g in groups})
    variants = sorted({g.variant: g.key for g in groups}.items(), key=lambda kv: kv[1])
    colors = {v: plt.get_cmap("tab10")(i % 10) for i, (v, _) in enumerate(variants)}

    def draw(ax: Any, env_id: str) -> None:
        env_groups = [g for g in groups if g.env_id == env_id]
        top = max(r.reached_step for g in env_groups for r in g.runs)
        edges = np.linspace(0.0, float(top), bins + 1)
        x = (edges[:-1] + edges[1:]) / 2
        for g in env_groups:
            curves = np.stack([binned_curve(r.steps, r.returns, edges, r.reached_step) for r in g.runs])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN bins stay NaN
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
    for ax in list(axes.flat)[len(envs):]:
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


# ------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------
def _f(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def write_markdown(rep: Report, path: Path, curve_files: Sequence[Path]) -> None:
    n_prog = sum(not r.finished for r in rep.runs)
    pct = "95%"
    L: list[str] = ["# PPO report", ""]
    L.append(f"Inputs: {', '.join(f'`{d}`' for d in rep.dirs)}. {len(rep.runs)} runs read "
             f"({n_prog} in progress), {len(rep.skipped)} skipped. Scores are raw episode returns of the "
             f"training episodes (episodes.csv); a run's score is the mean of its last {LAST_N} episodes.")
    L += ["", "## Final score across seeds", "",
          f"Score of a run = mean return of its last {LAST_N} training episodes (the paper's metric). "
          f"Mean +- sample std (ddof=1) over runs; IQM = mean after dropping floor(n/4) runs at each end, "
          f"{pct} CI by percentile bootstrap over runs ({rep.bootstrap} resamples, fixed seed).", ""]
    rows = []
    for g in rep.groups:
        steps = sorted({r.reached_step for r in g.runs})
        stopped = sum(bool(r.job_state) for r in g.runs if not r.finished)
        status = ("finished" if not g.in_progress else
                  f"{g.in_progress} of {len(g.runs)} " + ("in progress" if not stopped else "not finished"))
        rows.append([g.env_id, g.variant + (" **(best)**" if g.best else ""), str(len(g.runs)),
                     str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}",
                     f"{_f(g.score_mean)} +- {_f(g.score_std)}",
                     f"{_f(g.score_iqm)} [{_f(g.iqm_ci[0])}, {_f(g.iqm_ci[1])}]", status])
    L += _table(["env", "variant", "runs", "env steps", "last-100 mean +- std", f"IQM [{pct} CI]", "status"], rows)

    envs, variants = rep.envs, rep.variants
    L += ["", "## Table 1: normalized score", "",
          "Per env e: norm(run) = (s(run) - r_e) / (b_e - r_e), s = mean of the run's last 100 episodes, "
          "r_e = random-policy score (uniform random actions, same env stack and env seeds), "
          "b_e = the best compared variant's mean score on e. A variant's entry is the mean of norm(run) "
          "over its runs (the best variant is 1, random play 0); the last columns pool all its runs on all envs.",
          ""]
    rows = []
    unfinished = {g.variant for g in rep.groups if g.in_progress}
    for v in variants:
        t = rep.table1[v]
        cells = [_f(t["per_env"].get(e, math.nan), 3) if e in t["per_env"] else "-" for e in envs]
        partial = f" ({t['envs']} of {len(envs)} envs)" if t["envs"] < len(envs) else ""
        ci = f"{_f(t['iqm'], 3)} [{_f(t['ci'][0], 3)}, {_f(t['ci'][1], 3)}]"
        rows.append([v + (" *" if v in unfinished else "")] + cells + [_f(t["mean"], 3) + partial, ci, str(t["runs"])])
    L += _table(["variant"] + envs + ["mean over runs", f"IQM [{pct} CI]", "runs"], rows)
    if unfinished:
        L += ["", "\\* includes runs not finished yet (scored on the episodes they have so far)."]
    L += ["", "Random-policy score r_e and best variant b_e:", ""]
    rows = []
    for e in envs:
        rs = rep.random.get(e)
        best = next(g for g in rep.groups if g.env_id == e and g.best)
        seeds = ", ".join(f"{s}: {v:.4g}" for s, v in sorted(rs.per_seed.items())) if rs and rs.per_seed else ""
        src = rs.source if rs else "unavailable"
        if rs and rs.episodes:
            src += f", {rs.episodes} episodes per seed"
        rows.append([e, _f(rs.value if rs else math.nan), src, seeds or "-", best.variant, _f(best.score_mean)])
    L += _table(["env", "random score r_e", "source", "per seed", "best variant", "b_e"], rows)

    L += ["", "## Table 2 pair: average episode return", "",
          "Mean over seeds of (1) the average return of all training episodes and (2) the average of the "
          "last 100 (the paper's Atari Table 2 columns).", ""]
    rows = [[g.env_id, g.variant, f"{_f(g.train_mean)} +- {_f(g.train_std)}",
             f"{_f(g.score_mean)} +- {_f(g.score_std)}", str(len(g.runs))] for g in rep.groups]
    L += _table(["env", "variant", "all training", "last 100", "runs"], rows)

    L += ["", "## Runs", ""]
    rows = [[f"`{r.path}`", r.env_id, r.variant, str(r.seed), r.status, str(r.reached_step), str(len(r.returns)),
             _f(r.score), _f(r.train_mean), _f(r.normalized, 3), _f(r.last_eval)]
            for g in rep.groups for r in g.runs]
    L += _table(["run", "env", "variant", "seed", "status", "env steps", "episodes", "last 100", "all training",
                 "normalized", "last eval"], rows)

    if curve_files:
        L += ["", "## Learning curves", "",
              "Training episode return binned on a common env-step grid per env; line = mean over seeds, "
              "band over seeds. Runs in progress draw as far as they got.", ""]
        L += [f"![{p.stem}]({p.name})" for p in curve_files[:1]]
        L += [""] + [f"- [{p.name}]({p.name})" for p in curve_files[1:]]

    L += ["", "## Skipped runs", ""]
    L += [f"- `{s.path}`: {s.reason}" for s in rep.skipped] or ["none"]
    notes = rep.notes + [f"`{r.path}`: {n}" for r in rep.runs for n in r.notes]
    L += ["", "## Notes", ""]
    L += [f"- {n}" for n in notes] or ["none"]
    path.write_text("\n".join(L) + "\n")


def _cell(x: Any) -> Any:
    """A CSV cell: NaN becomes an empty cell, as in metrics.csv."""
    return "" if isinstance(x, float) and not math.isfinite(x) else x


def write_csvs(rep: Report, out: Path) -> list[Path]:
    """``report.csv`` (one row per env and variant) and ``runs.csv`` (one row per run); NaN is empty."""
    cols = ["env_id", "variant", "objective", "runs", "in_progress", "seeds", "env_steps_min", "env_steps_max",
            "last100_mean", "last100_std", "last100_iqm", "last100_iqm_ci_low", "last100_iqm_ci_high",
            "train_all_mean", "train_all_std", "random_score", "best_variant", "best_score", "normalized_mean"]
    with (out / "report.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for g in rep.groups:
            best = next(b for b in rep.groups if b.env_id == g.env_id and b.best)
            rs = rep.random.get(g.env_id)
            w.writerow([_cell(x) for x in [g.env_id, g.variant, g.objective, len(g.runs), g.in_progress,
                        " ".join(str(r.seed) for r in g.runs), min(r.reached_step for r in g.runs),
                        max(r.reached_step for r in g.runs), g.score_mean, g.score_std, g.score_iqm,
                        g.iqm_ci[0], g.iqm_ci[1], g.train_mean, g.train_std, rs.value if rs else math.nan,
                        best.variant, best.score_mean, g.normalized]])
    with (out / "runs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "env_id", "variant", "seed", "status", "env_steps", "total_steps", "episodes",
                    "last100_mean", "train_all_mean", "normalized", "last_eval_return_mean"])
        for g in rep.groups:
            for r in g.runs:
                w.writerow([_cell(x) for x in [str(r.path), r.env_id, r.variant, r.seed, r.state,
                            r.reached_step, r.total_steps, len(r.returns), r.score, r.train_mean, r.normalized,
                            r.last_eval]])
    return [out / "report.csv", out / "runs.csv"]


def build_report(dirs: Sequence[str | Path], out: str | Path, *, random_episodes: int = LAST_N,
                 random_scores_given: dict[str, float] | None = None, bootstrap: int = 2000,
                 bootstrap_seed: int = 0, bins: int = 50, band: str = "minmax", finished_only: bool = False,
                 plots: bool = True, log: TextIO | None = None) -> Report:
    """Read the runs below ``dirs``, write the report into ``out``, return the numbers.

    ``random_scores_given`` maps env id -> random-policy score and skips measuring those envs (tests,
    or a known reference). Raises :class:`ReportError` on bad input.
    """
    log = log or sys.stderr
    runs, skipped = load_runs(dirs)
    if finished_only:
        skipped += [Skipped(r.path, "in progress (--finished-only)") for r in runs if not r.finished]
        runs = [r for r in runs if r.finished]
    for s in skipped:
        log.write(f"skipped {s.path}: {s.reason}\n")
    if not runs:
        raise ReportError(f"no readable run in {', '.join(map(str, dirs))} ({len(skipped)} skipped)")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"--out {str(out)!r} cannot be created ({e.strerror})") from None
    random = random_scores(runs, random_episodes, out / RANDOM_CACHE, random_scores_given, log)
    groups, table1, notes = aggregate(runs, random, bootstrap, bootstrap_seed)
    rep = Report([str(d) for d in dirs], runs, skipped, groups, random, table1, notes, bootstrap)
    curve_files = plot_curves(groups, random, out, bins, band) if plots else []
    write_markdown(rep, out / "report.md", curve_files)
    rep.files = [out / "report.md", *write_csvs(rep, out), *curve_files]
    return rep


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------
def _env_value(text: str) -> tuple[str, float]:
    env, sep, value = text.rpartition("=")
    try:
        if not sep or not env:
            raise ValueError
        return env, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENV=SCORE such as CartPole-v1=22.3, got {text!r}") from None


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _positive(text: str) -> int:
    v = _nonneg(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="python -m ppo_pipeline.report", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog="Formulas: see the module docstring (pydoc ppo_pipeline.report) and report.md.")
    p.add_argument("dirs", nargs="+", metavar="DIR",
                   help="run directories or folders/sweeps holding them (searched recursively for config.json)")
    p.add_argument("--out", default="report", help="output folder for report.md, CSVs, PNGs (default: %(default)s)")
    p.add_argument("--random-episodes", type=_nonneg, default=LAST_N, metavar="N",
                   help="random-policy episodes per seed for the normalized score; 0 = do not measure "
                        "(default: %(default)s)")
    p.add_argument("--random-score", type=_env_value, action="append", default=[], metavar="ENV=SCORE",
                   help="use this random-policy score for ENV instead of measuring it; repeatable (default: none)")
    p.add_argument("--bootstrap", type=_nonneg, default=2000, metavar="N",
                   help="bootstrap resamples for the IQM confidence intervals (default: %(default)s)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="SEED",
                   help="seed of the bootstrap RNG (default: %(default)s)")
    p.add_argument("--bins", type=_positive, default=50, metavar="N",
                   help="env-step bins of the learning curves (default: %(default)s)")
    p.add_argument("--band", choices=("minmax", "std"), default="minmax",
                   help="seed band of the curves: min-max over seeds or mean +- std (default: %(default)s)")
    p.add_argument("--finished-only", action="store_true", default=False,
                   help="leave out runs still in progress (default: %(default)s)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    try:
        rep = build_report(ns.dirs, ns.out, random_episodes=ns.random_episodes,
                           random_scores_given=dict(ns.random_score), bootstrap=ns.bootstrap,
                           bootstrap_seed=ns.bootstrap_seed, bins=ns.bins, band=ns.band,
                           finished_only=ns.finished_only)
    except ReportError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    print(f"report of {len(rep.runs)} runs ({len(rep.skipped)} skipped) in {ns.out}: "
          + ", ".join(p.name for p in rep.files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
