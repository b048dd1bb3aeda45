"""Grouping runs by (env, variant) and the numbers the tables show, Table 1's normalization included.

Normalized scores are pooled within an env family only (:func:`family`): Table 1's over Table 1's MuJoCo tasks,
and each other family (Atari, classic control, ...) apart, so a Pong or CartPole run never counts among a Table 1
row's tasks."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paper
from ..envs import ids
from .random_policy import RandomScore
from .runs import Run, Skipped
from .stats import bootstrap_ci, iqm, mean, std

# Config fields that do not change what a run learns; runs of one group may differ in these freely.
NEUTRAL_FIELDS = {
    "seed",
    "name",
    "run_dir",
    "device",
    "torch_threads",
    "progress",
    "tensorboard",
    "vector_env",
    "env_backend",
    "eval_every",
    "eval_episodes",
    "eval_max_steps",
    "checkpoint_every",
    "capture_video",
    "compile",
    "track",
    "wandb_project",
    "wandb_entity",
    "wandb_group",
}


TABLE1_FAMILY = "Table 1 MuJoCo"
FAMILIES = (TABLE1_FAMILY, "other MuJoCo", "Atari", "classic control", "DMControl", "other")


_REPORT_FAMILY = {"atari": "Atari", "mujoco": "other MuJoCo", "classic": "classic control", "dmc": "DMControl"}


def family(env_id: str) -> str:
    """The family whose runs ``env_id``'s are compared with (one of :data:`FAMILIES`): Table 1's 7 MuJoCo tasks,
    other MuJoCo tasks, Atari games, classic control, DMControl (``dmc:``), anything else; from the id's family
    (:func:`ppo_pipeline.envs.ids.family`)."""
    if paper.is_table1_task(env_id):
        return TABLE1_FAMILY
    if paper.game_of(env_id) is not None:
        return "Atari"
    return _REPORT_FAMILY.get(ids.family(env_id), "other")


@dataclass
class Group:
    """All runs of one variant on one env, with the numbers the tables show."""

    env_id: str
    variant: str
    key: tuple[int, float, str]
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
    families: dict[str, dict[str, dict[str, Any]]]  # family -> variant -> {"per_env", "mean", "iqm", "ci", "runs"}
    notes: list[str]
    bootstrap: int
    files: list[Path] = field(default_factory=list)

    @property
    def table1(self) -> dict[str, dict[str, Any]]:
        """Table 1's rows: variant -> its normalized score over Table 1's MuJoCo tasks (empty when none ran)."""
        return self.families.get(TABLE1_FAMILY, {})

    def family_envs(self, fam: str) -> list[str]:
        """The report's envs of family ``fam``."""
        return [e for e in self.envs if family(e) == fam]

    def family_variants(self, fam: str) -> list[str]:
        """The variants run on family ``fam``'s envs, in the paper's row order."""
        return [v for v in self.variants if v in self.families.get(fam, {})]

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


def aggregate(
    runs: Sequence[Run], random: dict[str, RandomScore], n_boot: int = 2000, boot_seed: int = 0
) -> tuple[list[Group], dict[str, dict[str, dict[str, Any]]], list[str]]:
    """Groups by (env, variant) with their statistics; per family (:func:`family`, in :data:`FAMILIES` order) each
    variant's normalized score pooled over that family's envs; notes on the data."""
    notes: list[str] = []
    by: dict[tuple[str, str], Group] = {}
    for r in sorted(runs, key=lambda r: (r.env_id, r.variant_key, r.seed, str(r.path))):
        g = by.setdefault((r.env_id, r.variant), Group(r.env_id, r.variant, r.variant_key, []))
        g.runs.append(r)
    groups = sorted(by.values(), key=lambda g: (g.env_id, g.key))
    for g in groups:
        scores = [r.score for r in g.runs]
        g.score_mean, g.score_std, g.score_iqm = mean(scores), std(scores), iqm(scores)
        g.iqm_ci = bootstrap_ci(scores, n_boot, boot_seed)
        g.train_mean, g.train_std = mean(r.train_mean for r in g.runs), std(r.train_mean for r in g.runs)
        seeds = [r.seed for r in g.runs]
        dup = sorted({s for s in seeds if seeds.count(s) > 1})
        if dup:
            notes.append(f"{g.env_id}, {g.variant}: seed(s) {dup} appear in more than one run directory")
        differ = sorted(
            k
            for k in g.runs[0].config
            if k not in NEUTRAL_FIELDS and len({json.dumps(r.config.get(k), sort_keys=True) for r in g.runs}) > 1
        )
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
            g.normalized = mean(r.normalized for r in g.runs)
    families: dict[str, dict[str, dict[str, Any]]] = {f: {} for f in FAMILIES}
    for g in groups:
        t = families[family(g.env_id)].setdefault(g.variant, {"key": g.key, "per_env": {}, "values": []})
        t["per_env"][g.env_id] = g.normalized
        vals = [r.normalized for r in g.runs if math.isfinite(r.normalized)]
        if vals:
            t["values"].append(vals)
    families = {f: rows for f, rows in families.items() if rows}
    for t in (t for rows in families.values() for t in rows.values()):
        flat = [x for vals in t["values"] for x in vals]
        t["runs"] = len(flat)
        t["envs"] = len(t["values"])
        t["mean"] = mean(flat)
        t["iqm"] = iqm(flat)
        t["ci"] = bootstrap_ci(t["values"], n_boot, boot_seed) if flat else (math.nan, math.nan)
    return groups, families, notes
