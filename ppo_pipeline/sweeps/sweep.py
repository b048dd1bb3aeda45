"""Seed sweeps: envs x objectives x seeds, run locally or as a SLURM job array through submitit.

Submitting (``recipes/*.py --launcher slurm --cluster NAME --seeds 0-4 --env A,B --objective clip,kl_adaptive``,
see :mod:`ppo_pipeline.launch`) creates a sweep directory::

    SWEEP_DIR/manifest.json          what was submitted: each run's config, its job ids, the cluster profile
    SWEEP_DIR/runs/<run>/            one run directory per (env, objective, seed): metrics.csv, checkpoints ...
    SWEEP_DIR/runs/<run>/job.json    the run's last known job state (written by the job itself)
    SWEEP_DIR/slurm/<job id>/        submitit's sbatch script, stdout/stderr and pickles

and, with ``--launcher slurm``, one job array (``executor.batch()``) whose concurrency is capped by the
profile's ``array_parallelism`` (``--max-parallel``). Each task is a :class:`SweepJob`, a submitit
:class:`~submitit.helpers.Checkpointable`: on preemption (SIGUSR2) the trainer finishes the update in
flight, writes a checkpoint, and submitit requeues the task, which resumes from that checkpoint and
ends exactly where an uninterrupted run would.

Managing a sweep::

    python -m ppo_pipeline.sweep status DIR     # run, state, progress %, last return, job id
    python -m ppo_pipeline.sweep resume DIR     # resubmit only the unfinished or failed runs
    python -m ppo_pipeline.sweep cancel DIR     # cancel the sweep's queued and running jobs

Cluster profiles and the SLURM plumbing live in :mod:`ppo_pipeline.sweeps.slurm`. Bad input -- an unknown profile, an existing sweep directory, SLURM not
reachable, a corrupt or foreign checkpoint -- is one ``error: ...`` line and exit code 2, before any
job is submitted.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as _dt
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import rundir
from ..cli import OneLineParser, fail
from ..config import Config, ConfigError
from ..errors import UserError
from ..run import checkpoint
from ..run.prepare import check_envs, prepare
from . import experiments, slurm
from .jobs import FINISHED, LOCAL, RUNS, SweepJob, failed_runs, run_unit

MANIFEST = "manifest.json"
FORMAT = "ppo-pipeline/sweep/v1"
ACTIVE_STATES = slurm.ACTIVE_STATES


class SweepError(UserError):
    """Bad sweep input; the message is the one line the user sees."""


# ------------------------------------------------------------------------------------------------------
# Planning and submitting
# ------------------------------------------------------------------------------------------------------
def plan(
    base: Config,
    env_ids: Sequence[str],
    variants: Sequence[dict[str, Any]],
    seeds: Sequence[int],
    sweep_dir: Path,
    *,
    atari_only: bool = False,
    env_overrides: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """One validated run entry per (env, variant, seed): ``variants`` are config overrides (a grid's points
    or an experiment's rows), ``env_overrides`` an env's own (an experiment's per-task settings). Raises
    ConfigError/SweepError on bad input."""
    runs: list[dict[str, Any]] = []
    for env_id in env_ids:
        own = (env_overrides or {}).get(env_id, {})
        for varied in variants:
            for seed in seeds:
                cfg = dataclasses.replace(
                    base, env_id=env_id, seed=seed, run_dir=str(sweep_dir / RUNS), **{**own, **varied}
                )
                cfg = prepare(cfg, atari_only=atari_only, device=False)  # device: resolved on the node
                check_envs(cfg)
                cfg.name = experiments.run_name(cfg.env_id, cfg.objective, varied, seed)
                cfg.run_dir = RUNS  # stored relative to the sweep directory: a moved sweep reads the same
                runs.append(
                    {
                        "name": cfg.name,
                        "env_id": cfg.env_id,
                        "objective": cfg.objective,
                        "seed": seed,
                        "varied": dict(varied),
                        "config": cfg.to_dict(),
                        "job_id": None,
                        "job_ids": [],
                    }
                )
    names = [r["name"] for r in runs]
    dup = sorted(n for n, k in collections.Counter(names).items() if k > 1)
    if dup:
        raise SweepError(f"the sweep names run {dup[0]!r} twice (an env given twice under two spellings?)")
    return runs


def create(
    sweep_dir: Path,
    runs: list[dict[str, Any]],
    *,
    launcher: str,
    cluster: str | None,
    max_parallel: int | None,
    argv: Sequence[str],
    packs: Sequence[Sequence[str]] = (),
) -> dict[str, Any]:
    """Make the sweep directory and its manifest; refuses an existing directory. ``packs``: the run names of
    each pack of two or more runs (``--pack``); the other runs train alone."""
    if sweep_dir.exists():
        raise SweepError(
            f"sweep directory {str(sweep_dir)!r} exists; continue it with "
            f"`python -m ppo_pipeline.sweep resume {sweep_dir}` or choose another --sweep-dir"
        )
    (sweep_dir / RUNS).mkdir(parents=True)
    # Every path the sweep reads back is relative to the sweep directory (runs' run_dir, pack.json's members), so
    # a moved or copied folder reads the same. "command" is a record of what was typed, not read back; its
    # interpreter stays absolute: it names the environment (a venv's python) the sweep and its SLURM jobs run
    # in, which is not inside the sweep directory and does not move with it.
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "launcher": launcher,
        "cluster": cluster,
        "max_parallel": max_parallel,
        "command": [sys.executable, *sys.argv[:1], *argv],
        "submissions": [],
        "runs": runs,
        "packs": {pack_name(i, members, runs): list(members) for i, members in enumerate(packs) if len(members) > 1},
    }
    for name, members in manifest["packs"].items():
        for run in runs:
            if run["name"] in members:
                run["pack"] = name
    rundir.write_json(sweep_dir / MANIFEST, manifest)
    return manifest


def pack_name(i: int, members: Sequence[str], runs: Sequence[dict[str, Any]]) -> str:
    """``pack-003__Hopper-v5``: its number and its env."""
    env = next(r["env_id"] for r in runs if r["name"] == members[0])
    return f"pack-{i:03d}__{env.replace('/', '-').replace(':', '-')}"


def units(manifest: dict[str, Any], names: Sequence[str]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    """The units of work that train the runs ``names``, in manifest order: (pack name, its runs) for a pack
    (whole: a pack trains and resumes as one), (None, [run]) for a run alone."""
    out: list[tuple[str | None, list[dict[str, Any]]]] = []
    seen: set[str] = set()
    for run in manifest["runs"]:
        if run["name"] not in names:
            continue
        pack = run.get("pack")
        if pack is None:
            out.append((None, [run]))
        elif pack not in seen:
            seen.add(pack)
            out.append((pack, [r for r in manifest["runs"] if r.get("pack") == pack]))
    return out


def _spec(sweep_dir: Path, pack: str | None, runs: list[dict[str, Any]], **override: Any) -> dict[str, Any]:
    """What a job gets: a run's config, or a pack's directory and its members' configs (``override``: config
    fields set for this submission only, e.g. ``progress``)."""
    if pack is None:
        return _with_run_dir(sweep_dir, runs[0], **override)
    return {
        "pack_dir": str((sweep_dir / "packs" / pack).resolve()),
        "members": [_with_run_dir(sweep_dir, r, **override) for r in runs],
    }


def load_manifest(sweep_dir: Path) -> dict[str, Any]:
    path = sweep_dir / MANIFEST
    if not path.is_file():
        raise SweepError(f"{str(sweep_dir)!r} is not a sweep directory (no {MANIFEST})")
    data = rundir.read_json(path)
    if data.get("format") != FORMAT or not isinstance(data.get("runs"), list):
        raise SweepError(f"{str(path)!r} is not a ppo-pipeline sweep manifest")
    for i, run in enumerate(data["runs"]):
        if not isinstance(run, dict) or not isinstance(run.get("name"), str) or not isinstance(run.get("config"), dict):
            raise SweepError(f"{str(path)!r} is damaged: run {i} has no name or no config")
        run.setdefault("job_id", None)
        run.setdefault("job_ids", [])
        run.setdefault("pack", None)
    data.setdefault("packs", {})
    return data


def _run_path(sweep_dir: Path, run: dict[str, Any]) -> Path:
    return sweep_dir / RUNS / run["name"]


def _with_run_dir(sweep_dir: Path, run: dict[str, Any], **override: Any) -> dict[str, Any]:
    """The run's config with run_dir pointing into this sweep directory (wherever it now lives; the stored run_dir,
    ``runs`` or an older manifest's absolute path, is not read), and ``override``'s fields."""
    return {**run["config"], "run_dir": str((sweep_dir / RUNS).resolve()), "name": run["name"], **override}


def check_checkpoints(sweep_dir: Path, runs: list[dict[str, Any]]) -> None:
    """Refuse to start when a run's (a pack member's too) newest checkpoint is corrupt or belongs to another run."""
    for run in runs:
        latest = checkpoint.latest(_run_path(sweep_dir, run))
        if latest is not None:
            try:
                checkpoint.load_for_run(latest, prepare(Config.from_dict(_with_run_dir(sweep_dir, run))).to_dict())
            except (checkpoint.CheckpointError, ConfigError) as e:
                raise SweepError(str(e)) from None


def submit_slurm(sweep_dir: Path, manifest: dict[str, Any], names: Sequence[str]) -> list[str]:
    """Submit the units that train the runs ``names`` (packs whole) as one job array, one job per unit; record
    the job ids in the manifest (a pack's members all get its job's id)."""
    todo = units(manifest, names)
    first = todo[0][1][0]["config"] if todo else {}  # a sweep's runs share how many ranks each runs over
    ids = slurm.submit_array(
        sweep_dir / "slurm",
        slurm.load_cluster(manifest["cluster"]),
        manifest.get("max_parallel"),
        SweepJob(),
        [_spec(sweep_dir, pack, runs) for pack, runs in todo],
        nodes=int(first.get("nodes", 1)),
        ranks_per_node=int(first.get("nproc_per_node", 1)),
    )
    for (_, runs), jid in zip(todo, ids):
        for run in runs:
            run["job_id"] = jid
            run["job_ids"].append(jid)
    manifest["submissions"].append(
        {"time": _dt.datetime.now().isoformat(timespec="seconds"), "job_ids": ids, "runs": list(names)}
    )
    rundir.write_json(sweep_dir / MANIFEST, manifest)
    return ids


def run_local(sweep_dir: Path, manifest: dict[str, Any], names: Sequence[str], **override: Any) -> int:
    """Run ``names`` one after the other in this process (``override``: config fields for this time only).
    SIGTERM / Ctrl-C checkpoint and stop the sweep.

    Returns 0 when every run finished, 1 when one failed, 130 when interrupted. A run or pack over
    ``--nproc-per-node`` ranks runs as that many processes here (:func:`ppo_pipeline.run.ranked.spawn_local`).
    """
    from ..run import ranked
    from ..run.trainer import TrainingError, TrainingInterrupted

    manifest["submissions"].append(
        {
            "time": _dt.datetime.now().isoformat(timespec="seconds"),
            "job_ids": [f"{LOCAL}:{os.getpid()}"],
            "runs": list(names),
        }
    )
    failed = 0
    for pack, runs in units(manifest, names):
        for run in runs:
            run["job_id"] = f"{LOCAL}:{os.getpid()}"
            run["job_ids"].append(run["job_id"])
        rundir.write_json(sweep_dir / MANIFEST, manifest)
        print(f"[sweep] {pack + f' ({len(runs)} runs)' if pack else runs[0]['name']}", flush=True)
        spec = _spec(sweep_dir, pack, runs, **override)
        first = Config.from_dict(runs[0]["config"])
        if first.nproc_per_node > 1:  # the unit over ranks, each a process here (a failed rank says so itself)
            rc = ranked.spawn_local(first, hint=f"python -m ppo_pipeline.sweep resume {sweep_dir}", unit=spec)
            if rc == 130:
                sys.stderr.write(
                    f"sweep interrupted; continue with `python -m ppo_pipeline.sweep resume {sweep_dir}`\n"
                )
                return 130
            failed += rc != 0 or failed_runs([_run_path(sweep_dir, r) for r in runs])
            continue
        try:
            run_unit(spec, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGUSR2))
            failed += failed_runs([_run_path(sweep_dir, r) for r in runs])  # a pack's member that diverged
        except TrainingInterrupted as e:
            sys.stderr.write(
                f"sweep interrupted: {e}; continue with `python -m ppo_pipeline.sweep resume {sweep_dir}`\n"
            )
            return 130
        except (TrainingError, ConfigError, checkpoint.CheckpointError) as e:
            sys.stderr.write(f"{'pack ' + pack if pack else 'run ' + runs[0]['name']} failed: {e}\n")
            failed += 1
    return 1 if failed else 0


# ------------------------------------------------------------------------------------------------------
# Status
# ------------------------------------------------------------------------------------------------------
@dataclass
class RunStatus:
    run: str
    state: str
    progress: float  # percent of the run's updates logged in metrics.csv
    last_return: float | None  # mean return of the last 100 training episodes at the last logged update
    job_id: str
    restarts: int
    updates: int
    num_updates: int
    pack: str = ""  # the pack it trains in ("" alone)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def status(sweep_dir: Path) -> list[RunStatus]:
    """Where every run of the sweep stands (files of the run + sacct for SLURM jobs)."""
    manifest = load_manifest(sweep_dir)
    slurm_ids = [r["job_id"] for r in manifest["runs"] if r.get("job_id") and not str(r["job_id"]).startswith(LOCAL)]
    states = slurm.job_states(sweep_dir / "slurm", slurm_ids)
    out = []
    for run in manifest["runs"]:
        path = _run_path(sweep_dir, run)
        cfg = Config.from_dict(run["config"])
        n = cfg.num_updates
        rows, last = rundir.progress(path)
        job = rundir.read_json(path / rundir.JOB_STATE)
        summary = rundir.read_json(path / rundir.SUMMARY)
        jid = run.get("job_id") or ""
        if summary.get("status") == "finished" and summary.get("updates") == n:
            state = FINISHED
        elif not jid:
            state = "NOT_STARTED"
        elif jid.startswith(LOCAL):
            state = job.get("state", "NOT_STARTED")
            pid = job.get("pid")
            if state == "RUNNING" and (not isinstance(pid, int) or not _pid_alive(pid)):
                state = "INTERRUPTED"
        else:
            state = states.get(jid, "UNKNOWN")
            state = state.split()[0] if state else "UNKNOWN"  # "CANCELLED by 0" -> CANCELLED
            if state == "COMPLETED":  # the job returned without finishing the run
                state = "FAILED"
            if state == "UNKNOWN" and job.get("state"):
                state = job["state"]
        out.append(
            RunStatus(
                run=run["name"],
                state=state,
                progress=100.0 * min(rows, n) / max(n, 1),
                last_return=last,
                job_id=jid,
                restarts=int(job.get("restarts", 0) or 0),
                updates=rows,
                num_updates=n,
                pack=run.get("pack") or "",
            )
        )
    return out


def format_table(rows: list[RunStatus]) -> str:
    """A line per run (with its pack when the sweep has packs), then what finished (per pack too)."""
    packed = any(r.pack for r in rows)
    head = ("run", "state", "progress", "last return", "job id", "restarts") + (("pack",) if packed else ())
    body = [
        (
            r.run,
            r.state,
            f"{r.progress:.0f}%",
            "-" if r.last_return is None else f"{r.last_return:.1f}",
            r.job_id or "-",
            str(r.restarts),
        )
        + ((r.pack or "-",) if packed else ())
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in [head, *body]]
    done = sum(r.state == FINISHED for r in rows)
    tail = [f"{done}/{len(rows)} runs finished"]
    packs = collections.Counter(r.pack for r in rows if r.pack)
    if packs:
        whole = sum(all(r.state == FINISHED for r in rows if r.pack == p) for p in packs)
        tail.append(f"{whole}/{len(packs)} packs finished ({sum(packs.values())} runs in packs)")
    return "\n".join(lines + tail)


# ------------------------------------------------------------------------------------------------------
# resume / cancel
# ------------------------------------------------------------------------------------------------------
def resume(sweep_dir: Path, progress: bool | None = None) -> int:
    """Resubmit (or, for a local sweep, run) every run that is neither finished nor queued/running;
    ``progress`` False: no progress bars this time (None: each run's own setting)."""
    manifest = load_manifest(sweep_dir)
    rows = status(sweep_dir)
    todo = [
        r.run
        for r in rows
        if r.state != FINISHED
        and r.state not in ACTIVE_STATES
        and not (r.state == "RUNNING" and r.job_id.startswith(LOCAL))
    ]
    if not todo:
        print(
            f"nothing to resume: {sum(r.state == FINISHED for r in rows)}/{len(rows)} runs finished, "
            f"the others are queued or running"
        )
        return 0
    todo_runs = [r for r in manifest["runs"] if r["name"] in todo]
    check_checkpoints(sweep_dir, todo_runs)
    if manifest["launcher"] == "slurm":
        slurm.check_slurm(slurm.load_cluster(manifest["cluster"]))
        todo_units = units(manifest, todo)
        ids = submit_slurm(sweep_dir, manifest, todo)
        print(
            f"resubmitted {len(ids)} job(s): "
            + ", ".join(f"{pack or runs[0]['name']} -> {j}" for (pack, runs), j in zip(todo_units, ids))
        )
        return 0
    return run_local(sweep_dir, manifest, todo, **({} if progress is None else {"progress": progress}))


def cancel(sweep_dir: Path) -> int:
    """scancel the sweep's queued and running SLURM jobs; for a local sweep, SIGTERM its process
    (which checkpoints and stops)."""
    manifest = load_manifest(sweep_dir)
    rows = status(sweep_dir)
    if manifest["launcher"] == "slurm":
        live = sorted({r.job_id for r in rows if r.state in ACTIVE_STATES})
        if not live:
            print("nothing to cancel: no queued or running jobs")
            return 0
        slurm.check_slurm(slurm.load_cluster(manifest["cluster"]))
        slurm.cancel_jobs(sweep_dir / "slurm", live)
        print(f"cancelled {len(live)} job(s): {', '.join(live)}")
        return 0
    pids = {int(r.job_id.split(":")[1]) for r in rows if r.state == "RUNNING" and r.job_id.startswith(LOCAL + ":")}
    pids = {p for p in pids if _pid_alive(p)}
    if not pids:
        print("nothing to cancel: no local run in progress")
        return 0
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    print(
        f"sent SIGTERM to the local sweep process(es) {', '.join(map(str, sorted(pids)))}: "
        f"they checkpoint and stop after the update in flight"
    )
    return 0


def wait(sweep_dir: Path, timeout_s: float, poll_s: float = 2.0) -> list[RunStatus]:
    """Poll :func:`status` until no run is queued or running (or ``timeout_s`` passes)."""
    end = time.time() + timeout_s
    while True:
        rows = status(sweep_dir)
        if all(r.state not in ACTIVE_STATES and r.state not in ("UNKNOWN", "RUNNING") for r in rows):
            return rows
        if time.time() > end:
            return rows
        time.sleep(poll_s)


# ------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(
        prog="python -m ppo_pipeline.sweep",
        description="Inspect, resume and cancel a sweep made by a recipe's --seeds/--launcher options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    fmt = argparse.ArgumentDefaultsHelpFormatter
    dir_help = "the sweep directory (the one holding manifest.json)"
    p = sub.add_parser("status", help="table: run, state, progress %%, last return, job id", formatter_class=fmt)
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument("--json", action="store_true", help="one JSON object per run instead of the table")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="first wait up to S seconds until no run is queued or running",
    )
    p = sub.add_parser("resume", help="resubmit only the unfinished or failed runs", formatter_class=fmt)
    p.add_argument("dir", type=Path, help=dir_help)
    p.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars for a local sweep's runs this time (default: each run's own --progress)",
    )
    p = sub.add_parser("cancel", help="cancel the sweep's queued and running jobs", formatter_class=fmt)
    p.add_argument("dir", type=Path, help=dir_help)
    ns = parser.parse_args(argv)
    try:
        if ns.command == "status":
            rows = wait(ns.dir, ns.wait) if ns.wait > 0 else status(ns.dir)
            if ns.json:
                print("\n".join(json.dumps(dataclasses.asdict(r)) for r in rows))
            else:
                print(format_table(rows))
            return 0
        if ns.command == "resume":
            return resume(ns.dir, progress=False if ns.no_progress else None)
        return cancel(ns.dir)
    except UserError as e:
        fail(str(e))
    return 2  # unreachable


if __name__ == "__main__":
    sys.exit(main())
