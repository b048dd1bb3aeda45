"""SLURM plumbing for sweeps: cluster profiles, the submitit executor, job states from sacct/squeue.

Cluster profiles live in ``slurm/clusters/<name>.toml`` (``local``: the single-node cluster of
``slurm/local_cluster.sh``; see ``slurm/README.md`` for the keys). Nothing here knows what a sweep
or a run is: :mod:`ppo_pipeline.sweeps.sweep` hands this module job callables and job ids.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import submitit

from ..errors import UserError

REPO_ROOT = Path(__file__).resolve().parents[2]
CLUSTERS_DIR = Path(os.environ.get("PPO_CLUSTERS_DIR", REPO_ROOT / "slurm" / "clusters"))
LOCAL_CLUSTER_SCRIPT = REPO_ROOT / "slurm" / "local_cluster.sh"

# SLURM states in which a job may still run: `resume` leaves such runs alone.
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "RUNNING",
        "REQUEUED",
        "REQUEUE_HOLD",
        "REQUEUE_FED",
        "CONFIGURING",
        "COMPLETING",
        "RESIZING",
        "SUSPENDED",
        "SIGNALING",
        "STAGE_OUT",
    }
)


class SlurmError(UserError):
    """A bad cluster profile or an unreachable SLURM; the message is the one line the user sees."""


@dataclass
class ClusterProfile:
    """Where and how the jobs of a sweep run: one ``slurm/clusters/<name>.toml``."""

    name: str
    partition: str = ""
    account: str = ""
    qos: str = ""
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float = 4
    timeout_min: int = 60
    array_parallelism: int = 8
    setup: list = field(default_factory=list)
    additional: dict = field(default_factory=dict)
    description: str = ""

    def executor_parameters(
        self, max_parallel: int | None = None, nodes: int = 1, ranks_per_node: int = 1
    ) -> dict[str, Any]:
        """Parameters for ``submitit.AutoExecutor.update_parameters``; a run over ranks is one job of ``nodes`` x
        ``ranks_per_node`` tasks (each task a rank: :mod:`ppo_pipeline.run.ranked`)."""
        # the job unpickles ppo_pipeline.sweeps.sweep.SweepJob: make the checkout importable on the node
        setup = [f"export PYTHONPATH={REPO_ROOT}${{PYTHONPATH:+:$PYTHONPATH}}", *self.setup]
        params: dict[str, Any] = {
            "timeout_min": int(self.timeout_min),
            "nodes": int(nodes),
            "tasks_per_node": int(ranks_per_node),
            "cpus_per_task": int(self.cpus_per_task),
            "mem_gb": self.mem_gb,
            "name": "ppo-sweep",
            "slurm_array_parallelism": int(max_parallel or self.array_parallelism),
            "slurm_setup": setup,
        }
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.gpus_per_node:
            params["gpus_per_node"] = int(self.gpus_per_node)
        extra = dict(self.additional)
        if self.account:
            params["slurm_account"] = self.account
        if self.qos:
            params["slurm_qos"] = self.qos
        if extra:
            params["slurm_additional_parameters"] = extra
        return params


def known_clusters() -> list[str]:
    return sorted(p.stem for p in CLUSTERS_DIR.glob("*.toml")) if CLUSTERS_DIR.is_dir() else []


def load_cluster(name: str) -> ClusterProfile:
    """The profile ``slurm/clusters/<name>.toml`` (or a path to a .toml file)."""
    path = Path(name) if name.endswith(".toml") else CLUSTERS_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(known_clusters()) or "none"
        raise SlurmError(f"unknown cluster profile {name!r}; known profiles: {known} (files in {CLUSTERS_DIR})")
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        data = tomllib.loads(path.read_text())
    except Exception as e:
        raise SlurmError(f"cluster profile {str(path)!r} does not parse ({e})") from None
    names = {f.name for f in dataclasses.fields(ClusterProfile)} - {"name"}
    unknown = sorted(set(data) - names)
    if unknown:
        raise SlurmError(
            f"cluster profile {str(path)!r}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(names))}"
        )
    try:
        prof = ClusterProfile(name=path.stem, **data)
    except TypeError as e:
        raise SlurmError(f"cluster profile {str(path)!r}: {e}") from None
    if int(prof.timeout_min) < 1 or int(prof.cpus_per_task) < 1 or int(prof.array_parallelism) < 1:
        raise SlurmError(
            f"cluster profile {str(path)!r}: timeout_min, cpus_per_task and array_parallelism must be >= 1"
        )
    return prof


def _start_hint() -> str:
    return f"start the local cluster with `sudo {LOCAL_CLUSTER_SCRIPT} start` (or use --launcher local)"


def check_slurm(profile: ClusterProfile, timeout_s: float = 15.0) -> None:
    """Raise :class:`SlurmError` unless a SLURM controller answers and the profile's partition exists."""
    for tool in ("sbatch", "sinfo", "sacct", "scancel"):
        if shutil.which(tool) is None:
            raise SlurmError(f"SLURM is not reachable: {tool!r} is not installed here; {_start_hint()}")
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise SlurmError(
            f"SLURM is not reachable: sinfo did not answer in {timeout_s:.0f} s; {_start_hint()}"
        ) from None
    if out.returncode != 0:
        why = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise SlurmError(f"SLURM is not reachable (sinfo: {why}); {_start_hint()}")
    partitions = [p.rstrip("*") for p in out.stdout.split()]
    if profile.partition and profile.partition not in partitions:
        raise SlurmError(
            f"cluster profile {profile.name!r}: partition {profile.partition!r} does not exist here; "
            f"partitions: {', '.join(partitions) or 'none'}"
        )


def executor_for(
    log_dir: Path, profile: ClusterProfile, max_parallel: int | None, nodes: int = 1, ranks_per_node: int = 1
) -> submitit.AutoExecutor:
    """A submitit executor for ``profile`` whose logs go to ``log_dir/<job id>/``."""
    ex = submitit.AutoExecutor(folder=log_dir / "%j", cluster="slurm")
    ex.update_parameters(**profile.executor_parameters(max_parallel, nodes, ranks_per_node))
    return ex


def submit_array(
    log_dir: Path,
    profile: ClusterProfile,
    max_parallel: int | None,
    job: Callable[..., Any],
    args: Sequence[Any],
    nodes: int = 1,
    ranks_per_node: int = 1,
) -> list[str]:
    """Submit ``job(arg)`` for each of ``args`` as one job array (each job ``nodes`` x ``ranks_per_node`` tasks);
    returns the job ids in order."""
    ex = executor_for(log_dir, profile, max_parallel, nodes, ranks_per_node)
    with ex.batch():
        jobs = [ex.submit(job, a) for a in args]
    return [j.job_id for j in jobs]


def cancel_jobs(log_dir: Path, job_ids: Sequence[str]) -> None:
    """scancel ``job_ids`` (a job that already ended is left alone)."""
    for jid in job_ids:
        submitit.SlurmJob(folder=log_dir / "%j", job_id=jid).cancel(check=False)


def job_states(log_dir: Path, job_ids: Sequence[str]) -> dict[str, str]:
    """SLURM state of each job id (sacct through submitit, then squeue's COMPLETING); {} without SLURM."""
    if not job_ids or shutil.which("sacct") is None:
        return {}
    jobs: list[submitit.SlurmJob[Any]] = [submitit.SlurmJob(folder=log_dir / "%j", job_id=j) for j in job_ids]
    watcher = jobs[0].watcher
    try:
        watcher.update()
    except Exception:
        return {}
    states = {j.job_id: watcher.get_state(j.job_id, mode="cache") for j in jobs}
    # sacct says CANCELLED as soon as scancel is accepted; the job's processes may live on until
    # KillWait: squeue's COMPLETING keeps such a run "active" so that `resume` does not race it.
    try:
        q = subprocess.run(["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, timeout=30)
        for line in q.stdout.splitlines():
            jid, _, st = line.strip().partition(" ")
            if jid in states and st:
                states[jid] = st.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return states
