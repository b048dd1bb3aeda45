"""What one job of a sweep runs: a run (:func:`run_one`) or a pack of runs (:func:`run_pack`), resumed from
its newest checkpoint when there is one, its state in each run's ``job.json``; :class:`SweepJob` is the
submitit job around either (preemption-safe: checkpoint, requeue, resume)."""

from __future__ import annotations

import datetime as _dt
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any, Sequence

import submitit

from ..config import Config
from ..run import checkpoint, rundir
from ..run.prepare import prepare

LOCAL = "local"
FINISHED = "FINISHED"


def _job_id() -> str:
    jid, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if jid and task:
        return f"{jid}_{task}"
    return os.environ.get("SLURM_JOB_ID") or f"{LOCAL}:{os.getpid()}"


def _job_info(resume_from: Path | None) -> dict[str, Any]:
    return {"job_id": _job_id(), "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            "host": socket.gethostname(), "pid": os.getpid(),
            "restarts": int(os.environ.get("SLURM_RESTART_COUNT", "0")),
            "resumed_from": str(resume_from) if resume_from else None,
            "started": _dt.datetime.now().isoformat(timespec="seconds")}


def run_pack(spec: dict[str, Any], signals: Sequence[int] = (signal.SIGUSR2,)) -> list[dict[str, Any]]:
    """Train the pack ``spec`` (``{"pack_dir": ..., "members": [config, ...]}``) to the end, resuming from its
    newest checkpoint when there is one; each member's ``job.json`` records the pack's state (a member that
    diverged: FAILED with the NaN stop's line)."""
    from ..pack.trainer import PackTrainer
    from ..run.trainer import TrainingInterrupted

    members = [prepare(Config.from_dict(c)) for c in spec["members"]]
    pack_dir = Path(spec["pack_dir"])
    resume_from = checkpoint.latest(pack_dir)
    info = _job_info(resume_from)

    def mark(state: str, **extra: Any) -> None:
        for p, m in enumerate(members):
            if p not in getattr(trainer, "failed", {}):
                rundir.write_json(m.run_path() / rundir.JOB_STATE, {**info, "state": state, **extra})

    trainer = PackTrainer(members, pack_dir)
    trainer.checkpoint_on_signal(*signals)
    mark("RUNNING")
    try:
        summaries = trainer.train(resume_from)
    except TrainingInterrupted as e:
        mark("INTERRUPTED", error=str(e))
        raise
    except SystemExit:
        mark("REQUEUED")
        raise
    except BaseException as e:
        mark("FAILED", error=f"{type(e).__name__}: {e}")
        raise
    mark(FINISHED, ended=_dt.datetime.now().isoformat(timespec="seconds"))
    return summaries


def run_unit(spec: dict[str, Any], signals: Sequence[int] = (signal.SIGUSR2,)) -> Any:
    """A sweep's unit of work: a pack (``spec`` has ``pack_dir``) or one run (``spec`` is its config)."""
    return run_pack(spec, signals) if "pack_dir" in spec else run_one(spec, signals)


def run_one(config: dict[str, Any], signals: Sequence[int] = (signal.SIGUSR2,)) -> dict[str, Any]:
    """Train the run of ``config`` to the end, resuming from its newest checkpoint when there is one.

    ``signals`` make the trainer checkpoint at the end of the update in flight and hand the signal on
    (submitit's SIGUSR2 handler requeues the job). The run's ``job.json`` records the state.
    """
    from ..run.trainer import TrainingInterrupted, run_training

    cfg = prepare(Config.from_dict(config))   # device "auto" is resolved here, on the node
    run_path = cfg.run_path()
    run_path.mkdir(parents=True, exist_ok=True)
    resume_from = checkpoint.latest(run_path)
    if resume_from is not None:
        checkpoint.load_for_run(resume_from, cfg.to_dict())   # CheckpointError names the file
    info = _job_info(resume_from)
    rundir.write_json(run_path / rundir.JOB_STATE, {**info, "state": "RUNNING"})
    try:
        summary = run_training(cfg, resume_from, signals)
    except TrainingInterrupted as e:
        rundir.write_json(run_path / rundir.JOB_STATE, {**info, "state": "INTERRUPTED", "error": str(e)})
        raise
    except SystemExit:  # submitit's handler: checkpoint written, job requeued
        rundir.write_json(run_path / rundir.JOB_STATE, {**info, "state": "REQUEUED"})
        raise
    except BaseException as e:
        rundir.write_json(run_path / rundir.JOB_STATE, {**info, "state": "FAILED", "error": f"{type(e).__name__}: {e}"})
        raise
    rundir.write_json(run_path / rundir.JOB_STATE, {**info, "state": FINISHED,
                                       "ended": _dt.datetime.now().isoformat(timespec="seconds")})
    return summary


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
        try:
            return run_unit(config, signals=(signal.SIGUSR2, signal.SIGTERM))
        except Exception as e:
            from ..run.trainer import TrainingInterrupted

            if isinstance(e, TrainingInterrupted) and e.signum == signal.SIGTERM:
                time.sleep(1.0)
            raise

    def checkpoint(self, config: dict[str, Any]) -> submitit.helpers.DelayedSubmission:
        # The state lives in the run directory (the trainer checkpointed before handing on the signal).
        return submitit.helpers.DelayedSubmission(SweepJob(), config)


