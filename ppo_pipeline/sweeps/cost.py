"""What a sweep's plan costs (``--dry-run``): agent steps, and hours from the speed the bench measured.

Every bench file of this checkout (``results/bench/*.json``, whatever its name or kind) is read into
:class:`Figure` s: a workload (``cartpole``, ``hopper``, ``pong``, ``pong-lstm``, ``cheetah``), solo or a pack of
P runs, the env backend and collector when the file records them, the machine's cores and GPU. Each unit of
the plan (a run alone, or a pack of P runs) takes the figure that matches it best: the same workload and
kind of machine always; then a pack figure at the nearest P for a pack (a solo one only where none exists),
the same backend, the same collector, the newest date. A unit that no figure matches is said so, by name,
with the bench command that measures it; it never counts as 0 hours.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "results" / "bench"


@dataclass(frozen=True)
class Figure:
    """One measured speed: ``sps`` agent steps/s of all ``pack`` runs together (1: a run alone)."""

    workload: str
    pack: int
    backend: str | None  # None: the file does not say (the recipe's default of that day)
    collector: str
    sps: float
    cores: int
    gpu: bool
    date: str
    source: str  # the file, relative to the checkout


WORKLOADS = {"atari": "pong", "classic": "cartpole", "dmc": "cheetah"}


def workload_of(env_family: str) -> str:
    """The bench workload whose speed stands for an env family's (:func:`ppo_pipeline.envs.ids.family`): pong
    (Atari), cartpole (classic control), cheetah (DMControl through torchrl), hopper (everything else: MuJoCo,
    Bullet, user envs)."""
    return WORKLOADS.get(env_family, "hopper")


def _default_backend(workload: str) -> str | None:
    from ..tools.bench import PATHS

    return PATHS[workload][0][0] if workload in PATHS else None


def _figures_of(data: dict[str, Any], source: str) -> Iterator[Figure]:
    """The figures of one bench file's JSON (``results``: solo runs per workload, ``paths``: solo runs per backend
    and collector, ``pack``: a pack of P beside its solo run); other kinds hold none."""
    machine = data["machine"]
    common = {
        "cores": int(machine["cores"]),
        "gpu": machine.get("gpu", "none") != "none",
        "date": str(machine.get("date", "")),
        "source": source,
    }
    for key, entry in (data.get("results") or {}).items():
        sps = [r["sps"] for r in entry["ours"]]
        if sps:
            yield Figure(key, 1, _default_backend(key), "lean", statistics.median(sps), **common)
    for key, rows in (data.get("paths") or {}).items():
        for row in rows:
            if row.get("workers", 1) == 1:
                yield Figure(key, 1, row["backend"], row["collector"], float(row["sps"]), **common)
    for row in data.get("pack") or []:
        yield Figure(row["workload"], int(row["P"]), None, "lean", float(row["pack_sps"]), **common)
        yield Figure(row["workload"], 1, _default_backend(row["workload"]), "lean", float(row["solo_sps"]), **common)


def figures(bench_dir: Path | None = None) -> list[Figure]:
    """Every figure in ``bench_dir`` (default ``results/bench/``); a file that is no bench output is skipped."""
    bench_dir = BENCH_DIR if bench_dir is None else bench_dir
    out: list[Figure] = []
    for path in sorted(bench_dir.glob("*.json")) if bench_dir.is_dir() else []:
        try:
            source = str(path.relative_to(REPO_ROOT))
        except ValueError:
            source = str(path)
        try:
            out.extend(_figures_of(json.loads(path.read_text()), source))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
    return out


@dataclass(frozen=True)
class Unit:
    """What one process trains, as the bench sees it: a workload, alone or in a pack of ``pack``."""

    workload: str
    pack: int
    backend: str
    collector: str

    def describe(self) -> str:
        return (
            f"{self.workload}, {'alone' if self.pack == 1 else f'packs of {self.pack}'} "
            f"({self.backend} envs, {self.collector} collector)"
        )


def best(unit: Unit, gpu: bool, pool: Sequence[Figure]) -> Figure | None:
    """The figure of ``pool`` that stands best for ``unit`` on a GPU (``gpu``) or CPU machine; None when none
    measured its workload there."""
    same = [f for f in pool if f.workload == unit.workload and f.gpu == gpu]
    if unit.pack > 1 and any(f.pack > 1 for f in same):
        same = [f for f in same if f.pack > 1]
    else:
        same = [f for f in same if f.pack == 1]
    if not same:
        return None

    def rank(f: Figure) -> tuple:
        return (
            abs(math.log(f.pack / unit.pack)),
            {unit.backend: 0, None: 1}.get(f.backend, 2),
            f.collector != unit.collector,
            _neg(f.date),
            f.source,
        )

    return min(same, key=rank)


def _neg(date: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in date)  # newest first


def _caveats(unit: Unit, f: Figure) -> str:
    notes = []
    if f.pack != unit.pack:
        notes.append("measured alone: a pack's gain is not counted" if f.pack == 1 else f"measured at P={f.pack}")
    if f.backend is not None and f.backend != unit.backend:
        notes.append(f"measured with {f.backend} envs")
    if f.collector != unit.collector:
        notes.append(f"measured with the {f.collector} collector")
    return f" ({'; '.join(notes)})" if notes else ""


def units(runs: Sequence[dict[str, Any]], packs: Sequence[Sequence[str]] = ()) -> list[tuple[Unit, int, int]]:
    """(unit, runs, agent steps) of each process the plan starts: ``runs`` are the plan's entries, ``packs`` the
    run names of each pack (runs in none train alone)."""
    from ..config import Config
    from ..envs import spec_of

    by_name = {r.get("name", str(i)): r for i, r in enumerate(runs)}
    packed = {n for p in packs if len(p) > 1 for n in p}
    groups = [list(p) for p in packs if len(p) > 1] + [[n] for n in by_name if n not in packed]
    out = []
    for names in groups:
        cfgs = [Config.from_dict(by_name[n]["config"]) for n in names]
        cfg = cfgs[0]
        spec = spec_of(cfg, pack=len(names) > 1)
        unit = Unit(
            workload_of(spec.family) + ("-lstm" if cfg.policy == "lstm" else ""),
            len(names),
            spec.backend,
            cfg.collector,
        )
        out.append((unit, len(names), sum(c.steps_run for c in cfgs)))
    return out


def estimate(
    runs: Sequence[dict[str, Any]], *, gpu: bool, packs: Sequence[Sequence[str]] = (), bench_dir: Path | None = None
) -> list[str]:
    """Lines describing a plan (the runs of :func:`ppo_pipeline.sweeps.sweep.plan`, trained in ``packs``): runs,
    agent steps, and per kind of unit the hours from the figure that matches it (:func:`best`), then the total;
    units with no matching figure are named, and the total says it leaves them out."""
    kind = "GPU" if gpu else "CPU"
    todo: dict[Unit, list[int]] = {}
    for unit, n_runs, steps in units(runs, packs):
        acc = todo.setdefault(unit, [0, 0])
        acc[0] += n_runs
        acc[1] += steps
    total = sum(a[1] for a in todo.values())
    lines = [f"plan: {len(runs):,} run(s), {total:,} agent steps in all"]
    first = runs[0]["config"] if runs else {}
    world = int(first.get("nproc_per_node", 1)) * int(first.get("nodes", 1))
    if world > 1:  # a run over ranks: one job of nodes x nproc_per_node tasks (ppo_pipeline.run.ranked)
        lines.append(
            f"  each run: {first.get('nodes', 1)} node(s) x {first.get('nproc_per_node', 1)} ranks = {world} ranks "
            f"(num_envs / {world} envs each; one SLURM job of {world} tasks per run or pack)"
        )
    pool = figures(bench_dir)
    hours, sources, missing = 0.0, set(), []
    for unit, (n_runs, steps) in sorted(todo.items(), key=lambda kv: kv[0].describe()):
        f = best(unit, gpu, pool)
        if f is None:
            missing.append((unit, n_runs, steps))
            lines.append(
                f"  {unit.describe()}: {n_runs:,} run(s), {steps:,} steps: no measured {kind} speed for "
                f"{unit.workload} in results/bench/*.json"
            )
            continue
        h = steps / f.sps / 3600
        hours += h * (1 if gpu else f.cores)
        sources.add(f.source)
        lines.append(
            f"  {unit.describe()}: {steps:,} steps at {f.sps:,.0f} steps/s = {_hours(h)} h of one "
            f"{'pack' if unit.pack > 1 else 'run'} at a time on {f.cores} cores, from {f.source}" + _caveats(unit, f)
        )
    unit_name = "GPU-hours" if gpu else "core-hours (each process on the cores it was measured on)"
    if missing:
        from ..tools.bench import WORKLOADS

        known = sorted({u.workload for u, _, _ in missing} & set(WORKLOADS))
        if known:
            lines.append(
                f"  measure it with: python -m ppo_pipeline.bench --envs {','.join(known)} "
                f"--json results/bench/bench-DATE-{kind.lower()}.json"
            )
    if not sources:
        lines.append(f"estimated: unknown (no {kind} speed measured for these runs' workloads)")
    else:
        left = f"; {sum(m[1] for m in missing):,} run(s) with no measured speed left out" if missing else ""
        lines.append(f"estimated: {_hours(hours)} {unit_name}{left}")
    return lines


def _hours(h: float) -> str:
    """``1,234``, ``12.3``, ``0.017``: never a bare 0.0 for a plan that has steps."""
    return f"{h:,.0f}" if h >= 100 else f"{h:.1f}" if h >= 0.1 else f"{h:.2g}"
