"""Reading run directories for the report: which folders are runs, what each run scored.

A run is any folder holding a ``config.json`` (a sweep folder is searched recursively); one holding
``metrics.csv`` or ``episodes.csv`` without a readable config is a broken run. Tables are read
through :func:`ppo_pipeline.rundir.read_table`, the one reader of a run directory.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..run.metrics import EPISODE_COLUMNS
from ..rundir import (
    CONFIG,
    EPISODES,
    JOB_STATE,
    METRICS,
    SUMMARY,
    BrokenRun,
    RunConfigError,
    read_config,
    read_json,
    read_table,
)

RUN_FILES = (CONFIG, METRICS, EPISODES)
LAST_N = 100  # the paper's final score: mean of the last 100 episodes
# Paper's Table 1 row order: no clipping or penalty, clipping, adaptive KL, fixed KL.
OBJECTIVE_ORDER = {"none": 0, "clip": 1, "kl_adaptive": 2, "kl_fixed": 3}


class ReportError(Exception):
    """Bad input for the whole report (a DIR that does not exist, no runs); one line for the user."""


class NotARun(Exception):
    """A ``config.json`` that is not a run's (a sweep's own settings, say): ignored."""


def variant_of(cfg: dict[str, Any]) -> tuple[tuple[int, float, str], str]:
    """(sort key, label) of the run's variant: the objective and its Table 1 hyperparameter."""
    obj = cfg["objective"]
    policy = cfg.get("policy", "mlp")
    tail = "" if policy == "mlp" else f" ({policy})"  # an LSTM policy is its own variant
    param = {
        "clip": ("eps", "clip_epsilon"),
        "kl_adaptive": ("d_targ", "kl_target"),
        "kl_fixed": ("beta", "kl_beta"),
    }.get(obj)
    if param is None:
        return (OBJECTIVE_ORDER[obj], 0.0, policy), obj + tail
    value = float(cfg[param[1]])
    return (OBJECTIVE_ORDER[obj], value, policy), f"{obj} {param[0]}={value:g}{tail}"


@dataclass
class Run:
    """One run directory as read now."""

    path: Path
    config: dict[str, Any]
    steps: np.ndarray  # env step at which each training episode ended
    returns: np.ndarray  # its raw return
    reached_step: int  # env steps trained so far
    finished: bool
    last_eval: float  # latest deterministic evaluation (metrics.csv), NaN if none
    job_state: str = ""  # a sweep job's last state (job.json) when it is not running
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
    def variant_key(self) -> tuple[int, float, str]:
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
    started = (path / METRICS).exists() or (path / EPISODES).exists()
    try:
        cfg = read_config(path, what="").to_dict()  # the one strict reader of config.json
    except RunConfigError as e:
        if not started and (path / CONFIG).is_file() and "(not a run's config)" in e.reason:
            raise NotARun(str(path)) from None  # a config.json of something else (a sweep's settings)
        raise BrokenRun(e.reason) from None
    if not started:
        raise BrokenRun("not started: no metrics.csv or episodes.csv yet")

    summary: dict[str, Any] | None = None
    if (path / SUMMARY).exists():
        try:
            summary = json.loads((path / SUMMARY).read_text())
            if not isinstance(summary, dict):
                raise ValueError
        except (OSError, UnicodeDecodeError, ValueError):
            raise BrokenRun("summary.json is unparseable") from None
    finished = summary is not None and summary.get("status") == "finished"

    metrics = read_table(path / METRICS, ["update", "step"], drop_partial_tail=not finished, finite=["update", "step"])
    episodes = read_table(path / EPISODES, EPISODE_COLUMNS, drop_partial_tail=not finished, finite=EPISODE_COLUMNS)
    if len(episodes["step"]) == 0:
        raise BrokenRun("no finished training episode yet (episodes.csv has no rows)")
    steps, returns = episodes["step"], episodes["return"]
    reached = int(max(metrics["step"].max(initial=0.0), steps.max()))
    evals = metrics.get("eval_return_mean", np.array([]))
    evals = evals[np.isfinite(evals)]
    run = Run(
        path=path,
        config=cfg,
        steps=steps,
        returns=returns,
        reached_step=reached,
        finished=finished,
        last_eval=float(evals[-1]) if len(evals) else math.nan,
    )
    if not finished:
        state = str(read_json(path / JOB_STATE).get("state", ""))
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
