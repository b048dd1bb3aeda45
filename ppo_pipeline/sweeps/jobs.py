"""What one job of a sweep runs (:func:`run_unit`): a run or a pack of runs, resumed from
its newest checkpoint when there is one, its state in each run's ``job.json``; :class:`SweepJob` is the
submitit job around either (preemption-safe: checkpoint, requeue, resume)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit

from .. import rundir
from ..config import Config
from ..errors import UserError
from ..run import checkpoint
from ..run.prepare import prepare

LOCAL = "local"
FINISHED = "FINISHED"
RUNS = "runs"  # a sweep's runs' folder, relative to the sweep directory (what every stored run_dir says)
# a SLURM job over ranks requeues itself after a rank died while it has restarted fewer times than this
REQUEUES_AFTER_A_LOST_RANK = 5


def _job_id() -> str:
    jid, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if jid and task:
        return f"{jid}_{task}"
    return os.environ.get("SLURM_JOB_ID") or f"{LOCAL}:{os.getpid()}"


def _job_info() -> dict[str, Any]:
    return {
        "job_id": _job_id(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _store_relative(members: Sequence[Config]) -> None:
    """Each member's ``config.json`` with ``run_dir`` relative to the sweep directory (``runs``), as the manifest
    has it: the trainer wrote the absolute folder this job runs in, which would not follow a moved sweep."""
    for m in members:
        if (m.run_path() / rundir.CONFIG).is_file():
            rundir.write_config(m.run_path(), dataclasses.replace(m, run_dir=RUNS))


def failed_runs(run_paths: Sequence[Path]) -> int:
    """How many of these runs their ``job.json`` says FAILED (e.g. a pack's member that diverged)."""
    return sum(rundir.read_json(p / rundir.JOB_STATE).get("state") == "FAILED" for p in run_paths)


def requeue_after_a_lost_rank() -> bool:
    """In a SLURM job over ranks whose collective failed because a rank died or hung: requeue the job (it resumes
    from the run's newest checkpoint) unless it restarted ``REQUEUES_AFTER_A_LOST_RANK`` times already (a rank that
    fails every time); True when requeued. Any surviving rank may ask; a second request is refused by SLURM."""
    import subprocess

    jid = os.environ.get("SLURM_JOB_ID")
    if jid is None or int(os.environ.get("SLURM_RESTART_COUNT", "0")) >= REQUEUES_AFTER_A_LOST_RANK:
        return False
    subprocess.run(["scontrol", "requeue", jid], capture_output=True, timeout=60)
    return True


def unit_never_compiles(spec: dict[str, Any]) -> bool:
    """Whether the unit ``spec`` (:func:`run_unit`'s) never compiles: then the process that runs it alone (a SLURM
    job, a rank of a local one) leaves torch's compiler stack unimported (workaround 11)."""
    import torch

    from ..algo import compiling

    configs = spec["members"] if "pack_dir" in spec else [spec]
    try:
        first = prepare(Config.from_dict(configs[0]))
    except UserError:  # refused: run_unit says so where its job's state is written
        return False
    return compiling.never_at_budget(first, torch.device(first.device), members=len(configs))


def run_unit(
    spec: dict[str, Any], signals: Sequence[int] = (signal.SIGUSR2,), *, requeue_lost_rank: bool = False
) -> Any:
    """A sweep's unit of work, trained to the end: one run (``spec`` is its config; its summary) or a pack
    (``{"pack_dir": ..., "members": [config, ...]}``; the members' summaries), resumed from its newest checkpoint
    (a pack's: the update its ``pack.json`` marks) when there is one.

    ``signals`` make the trainer checkpoint at the end of the update in flight and hand the signal on
    (submitit's SIGUSR2 handler requeues the job). Each run's ``job.json`` records the state (a pack member that
    diverged: FAILED with the NaN stop's line). ``requeue_lost_rank`` (a SLURM job over ranks): when another rank
    dies or hangs, requeue the job (:func:`requeue_after_a_lost_rank`; REQUEUED) instead of failing.
    """
    from ..run import ranked, training_state
    from ..run.trainer import Trainer, TrainingInterrupted

    pack_dir = Path(spec["pack_dir"]) if "pack_dir" in spec else None
    configs = spec["members"] if pack_dir is not None else [spec]
    members = [prepare(Config.from_dict(c)) for c in configs]  # device "auto" is resolved here, on the node
    resume_from: Any = None
    if pack_dir is not None:
        points = training_state.pack_resume_points(pack_dir, members) if (pack_dir / "pack.json").exists() else None
        resume_from = points[0] if points else None
    else:
        members[0].run_path().mkdir(parents=True, exist_ok=True)
        resume_from = checkpoint.latest(members[0].run_path())
        if resume_from is not None:
            checkpoint.load_for_run(resume_from, members[0].to_dict())  # CheckpointError names the file
    info = _job_info()
    froms = list(resume_from) if isinstance(resume_from, list) else [resume_from] * len(members)  # per member
    trainer: Any = None

    def mark(state: str, **extra: Any) -> None:
        if os.environ.get("RANK", "0") != "0":  # a run over ranks: rank 0 keeps its job.json
            return
        for p, m in enumerate(members):
            if p not in getattr(trainer, "failed", {}):
                m.run_path().mkdir(parents=True, exist_ok=True)
                # the checkpoint it resumed from, relative to its run directory (a moved sweep reads the same)
                since = os.path.relpath(froms[p], m.run_path()) if froms[p] is not None else None
                rundir.write_json(
                    m.run_path() / rundir.JOB_STATE, {**info, "resumed_from": since, "state": state, **extra}
                )

    mark("RUNNING")
    try:
        trainer = Trainer(members if pack_dir is not None else members[0], pack_dir=pack_dir)
        if os.environ.get("RANK", "0") == "0":
            _store_relative(members)
        trainer.checkpoint_on_signal(*signals)
        summaries = trainer.train(resume_from)
    except TrainingInterrupted as e:
        mark("INTERRUPTED", error=str(e))
        raise
    except SystemExit:  # submitit's handler: checkpoint written, job requeued
        mark("REQUEUED")
        raise
    except BaseException as e:
        if requeue_lost_rank and ranked.lost_a_rank(e) and requeue_after_a_lost_rank():
            mark("REQUEUED", error=f"a rank was lost: {str(e).splitlines()[0][:300]}")
            raise SystemExit(1) from e  # SLURM stops this job and runs it again from the queue
        mark("FAILED", error=f"{type(e).__name__}: {e}")
        raise
    finally:  # a rank's process group closed before the interpreter exits (its threads would abort it)
        ranked.leave()
    mark(FINISHED, ended=_dt.datetime.now().isoformat(timespec="seconds"))
    return summaries


class SweepJob(submitit.helpers.Checkpointable):
    """One unit of a sweep (a run or a pack, :func:`run_unit`) as a submitit job; preemption-safe.

    On SIGUSR2 the trainer writes a checkpoint at the end of the update in flight, then submitit calls
    :meth:`checkpoint`, which resubmits the same run: the requeued job finds the checkpoint and resumes.
    """

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        # USR2: checkpoint at the end of the update, then submitit's handler requeues the job.
        # TERM (scancel, or SLURM's own preemption): checkpoint at the end of the update and stop;
        # submitit would ignore it, so its handler is replaced. submitit's job._interrupt() sends TERM
        # just before USR2: a USR2 arriving within a second after the stop still requeues.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        ranks = int(os.environ.get("SLURM_NTASKS", "1")) > 1
        if ranks:  # a run over ranks: each task one (torchrun's variables)
            gpus = bool(os.environ.get("CUDA_VISIBLE_DEVICES"))
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=gpus)
        if unit_never_compiles(config):  # this process runs the unit alone
            from .. import workarounds

            workarounds.defer_compiler_stack()
        try:
            return run_unit(config, signals=(signal.SIGUSR2, signal.SIGTERM), requeue_lost_rank=ranks)
        except Exception as e:
            from ..run.trainer import TrainingInterrupted

            if isinstance(e, TrainingInterrupted) and e.signum == signal.SIGTERM:
                time.sleep(1.0)
            raise

    def checkpoint(self, config: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        # The state lives in the run directory (the trainer checkpointed before handing on the signal).
        return submitit.helpers.DelayedSubmission(SweepJob(), config)
