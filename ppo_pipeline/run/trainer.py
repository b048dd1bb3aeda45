"""The run around Algorithm 1: logging, the evaluation cadence, checkpoints, signals and hooks.

:class:`~ppo_pipeline.algo.ppo.PPO` is the algorithm (collect, GAE, K epochs of Adam, schedules, the KL
rule); :class:`Trainer` runs its iterations and does what a run needs around them, for a solo run or a pack of
P members alike (each member a run with its own directory):

    for update in 1..K:
        rows, diverged = ppo.update(update)       # Algorithm 1, one iteration (every member's)
        per member: new episodes; evaluate every eval_every updates and at the end
        hooks (callbacks) see each member's row; log it (metrics.csv, TensorBoard, W&B)
        checkpoint every checkpoint_every updates, at the end, and when a signal or a hook stops the run

A solo run whose loss goes non-finite stops with one line naming the last good checkpoint; a pack member
that does stops alone with that line (on stderr and in its ``job.json``) while the others go on.
Checkpoint contents: :mod:`.training_state`; signals: :mod:`.preemption`; evaluation:
:mod:`ppo_pipeline.algo.evaluation`; what is written: :mod:`.metrics`; a pack's directory: :mod:`ppo_pipeline.pack.members`.
"""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import process, rundir
from ..algo.evaluation import evaluate
from ..algo.ppo import PPO, Diverged, one_thread_pays
from ..config import Config
from ..envs import make_vector_env
from ..envs.seeds import env_seeds
from ..pack import STACKING
from ..pack import members as pack_files
from ..threads import Threads
from . import checkpoint, ranked, training_state
from .callbacks import Callback, Member, StopAfter, load_callbacks
from .metrics import RunLogger, progress_bar, run_summary, show_progress, timing_split
from .preemption import DeferredSignals, TrainingInterrupted

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "run_training"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message names the update and the checkpoint kept."""


class Trainer:
    """One run, or a pack of P runs (``members``; ``pack_dir`` for P > 1): their directories, the algorithm
    (:attr:`ppo`), and the state a checkpoint needs."""

    def __init__(
        self, members: Config | Sequence[Config], callbacks: Sequence[Callback] = (), pack_dir: Path | None = None
    ):
        self.members = [members] if isinstance(members, Config) else list(members)
        self._one = isinstance(members, Config)  # train() returns its summary (a list: one per member)
        cfg = self.cfg = self.members[0]
        P = self.P = len(self.members)
        self.run_path = cfg.run_path()
        self.pack_dir = Path(pack_dir) if pack_dir is not None else None
        if P > 1 and self.pack_dir is None:
            raise ValueError("a pack of several members needs its directory (pack_dir)")
        self.ranks = ranked.join(cfg)  # the one process, or this rank of a run over several (rank 0 writes)
        for m in self.members if self.ranks.lead else ():  # first: from here on each folder is a run --resume takes
            m.run_path().mkdir(parents=True, exist_ok=True)
            rundir.write_config(m.run_path(), m)
        if self.pack_dir is not None and self.ranks.lead:
            pack_files.write_pack_files(self.pack_dir, self.members)
        self.threads = Threads(ranked.torch_threads(cfg, self.ranks))  # the cores free now (a rank: its share)
        checkpoint.seed_everything(cfg.seed)
        envs = make_vector_env(cfg, P * cfg.num_envs // self.ranks.world, pack=P > 1)
        try:
            stacking = STACKING if P > 1 else None
            self.ppo = PPO(self.members, envs, torch.device(cfg.device), stacking=stacking, ranks=self.ranks)
        except BaseException:  # Ctrl-C during start-up included: close the env workers
            envs.close()
            raise
        if one_thread_pays(cfg, self.ppo.agent, P):
            self.threads.limit(1)
        self.callbacks = [*load_callbacks(cfg.callbacks), *callbacks]
        self.updates_done = 0
        self.elapsed = 0.0  # wall time of earlier processes of this run (resume)
        self.rows = [0] * P  # metrics rows written per member (a failed member's stop growing)
        self.episodes_logged = [0] * P
        self.last_eval: Sequence[list[float] | None] = [None] * P
        self.failed: dict[int, str] = {}
        self.stop_signals: tuple[int, ...] = ()
        self.on_signal: Callable[[int], None] | None = None
        self._t_start: float | None = None
        self._first_update: dict[str, float] | None = None
        self.views = [Member(self, p) for p in range(P)]
        self.episode_merges = [ranked.EpisodeMerge(self.ranks) for _ in range(P)]  # over ranks: one per member

    @property
    def agent(self) -> Any:
        return self.ppo.agent

    @property
    def collector(self) -> Any:
        return self.ppo.collector

    def checkpoint_on_signal(self, *signums: int, on_signal: Callable[[int], None] | None = None) -> None:
        """Make :meth:`train` finish the update in flight and checkpoint when one of ``signums`` arrives,
        then pass the signal on (:mod:`ppo_pipeline.run.preemption`). Call from the main thread."""
        self.stop_signals = tuple(int(s) for s in signums)
        self.on_signal = on_signal

    def train(self, resume_from: Path | Sequence[Path] | None = None, stop_after: int | None = None) -> Any:
        """Run ``cfg.num_updates`` updates (from the checkpoint ``resume_from``, a pack's: one per member;
        ``stop_after``: stop after that many, see :class:`StopAfter`); return the summary (of a trainer built on
        a list of members: each member's, a list).

        A checkpoint is written every ``checkpoint_every`` updates, after the last update, when a hook stops
        the run, and when a signal of :meth:`checkpoint_on_signal` arrives. Resuming from any of them
        continues ``metrics.csv`` and ``episodes.csv`` row for row and ends in the same state as an
        uninterrupted run (CPU, in-process envs).
        """
        cfg = self.cfg
        hooks = self.callbacks + ([StopAfter(stop_after)] if stop_after is not None else [])
        loggers: list[RunLogger] = []
        bar = None
        try:
            with DeferredSignals(self.stop_signals, self.on_signal) as signals:
                loggers, saved = self._start(resume_from)
                if signals.pending:  # came during start-up: stop at the checkpoint just written or loaded
                    signals.deliver(self.updates_done, saved)
                process.started()  # a command's own process: start-up's objects out of the collector's passes
                self._t_start = time.perf_counter()
                start_step = self.collector.global_step
                bar = progress_bar(
                    dataclasses.replace(cfg, progress=cfg.progress and self.ranks.lead),
                    start_step,
                    members=self.P,
                    desc=self.pack_dir.name if self.pack_dir is not None else None,
                )
                for update in range(self.updates_done + 1, cfg.num_updates + 1):
                    rows = self._update(update)
                    self.updates_done = update
                    last = update == cfg.num_updates
                    evaluate_now = cfg.eval_episodes and (last or (cfg.eval_every and update % cfg.eval_every == 0))
                    if evaluate_now and self.ranks.lead:
                        _evaluate(self, loggers, update)
                    stop = _log_members(self, rows, loggers, hooks, update, bool(evaluate_now), start_step)
                    stop, pending = ranked.agree(self.ranks, stop, signals.pending)  # every rank stops alike
                    if pending and not signals.pending:  # a signal another rank saw: stop as if it came here
                        signals.received += (signal.SIGINT,)
                    pending = pending and not last
                    if last or stop or pending or update % cfg.checkpoint_every == 0:
                        saved = self._save(update)
                    show_progress(bar, rows[0] if self.P == 1 else None, self.collector.global_step * self.P)
                    self.threads.check()
                    if pending:
                        for logger in loggers:
                            logger.flush()  # the process may exit in the handler
                        signals.deliver(update, saved)
                    if stop:
                        break
        finally:
            if bar is not None:
                bar.close()
            for logger in loggers:
                logger.close()
            self.collector.shutdown()
            self.ppo.envs.close()
        if self.pack_dir is not None and self._first_update is not None and self.ranks.lead:
            pack_files.write_timing(self.pack_dir, self.timing(), self._first_update)
        summaries = [self.summary(p) for p in range(self.P)]
        if self.updates_done == cfg.num_updates and self.ranks.lead:
            for p, m in enumerate(self.members):
                if p not in self.failed:
                    rundir.write_json(m.run_path() / rundir.SUMMARY, summaries[p])
        return summaries[0] if self._one else summaries

    def _update(self, update: int) -> list[dict[str, Any]]:
        """One iteration of Algorithm 1. A solo run that diverges stops with one line naming the last good
        checkpoint (kept); a pack member that does stops alone (:func:`_fail`)."""
        rows, diverged = self.ppo.update(update)
        for merge, log in zip(self.episode_merges, self.collector.episodes):  # over ranks: every rank's at rank 0
            merge.merge(log)
        if self._first_update is None:
            self._first_update = self.timing()  # this process's first update (compiles)
        if diverged and self.P == 1:
            kept = checkpoint.latest(self.run_path)
            raise TrainingError(
                f"{Diverged(float(self.ppo.last_loss[0]), update, self.collector.global_step)}; "
                f"training stopped, last good checkpoint kept: {kept if kept else 'none written yet'}"
            )
        for p in diverged:
            _fail(self, p, update)
        return rows

    def _start(self, resume_from: Path | Sequence[Path] | None) -> tuple[list[RunLogger], Path]:
        """Load the checkpoint(s) to resume from; or reset the envs and write checkpoint 0, so that a run
        stopped at any moment from here on resumes where it was. Then open each member's logs, cut to its
        checkpoint (rows past it are redone; a fresh run starts them anew). Returns the logs and the checkpoint
        the run stands at (as :meth:`_save` names it: a pack's ``pack.json``)."""
        if resume_from is not None:
            paths = [resume_from] if isinstance(resume_from, (str, Path)) else list(resume_from)
            self.load_state_dict([checkpoint.load(Path(p)) for p in paths])
            saved = self.pack_dir / pack_files.PACK if self.pack_dir is not None else Path(paths[0])
        else:  # a new history: nothing of an earlier run in these directories may be taken for this one's
            for path in [m.run_path() for m in self.members] + ([self.pack_dir] if self.pack_dir else []):
                for stale in [*checkpoint.all_checkpoints(path), path / rundir.SUMMARY] if self.ranks.lead else ():
                    stale.unlink(missing_ok=True)
            share = self.ranks.envs  # this rank's envs, seeded as the one-process run's
            self.collector.reset(
                [s for m in self.members for s in env_seeds(m.seed, m.num_envs)[share.start : share.stop]]
            )
            saved = self._save(0)
        # on resume, TensorBoard drops the events past the checkpoint's step (they are redone)
        step = self.collector.global_step
        writers = self.members if self.ranks.lead else []
        loggers = [RunLogger.for_run(m, m.run_path(), purge_step=step + 1) for m in writers]
        for p, logger in enumerate(loggers):
            logger.metrics.truncate(self.rows[p])
            logger.episodes.truncate(self.episodes_logged[p])
        return loggers, saved

    def _save(self, update: int) -> Path:
        """Each live member's checkpoint (the solo format, in its directory); a pack then marks the update in its
        ``pack.json`` (where ``sweep resume`` continues it from)."""
        saved = None
        for p, m in enumerate(self.members):
            if p not in self.failed:
                state = ranked.gather_state(self.ranks, self.member_state_dict(p))  # the one-process checkpoint
                if self.ranks.lead:
                    saved = checkpoint.save(m.run_path(), update, state)
                else:
                    saved = checkpoint.path_for(m.run_path(), update)
        if self.pack_dir is not None:
            if self.ranks.lead:
                pack_files.mark_checkpoint(
                    self.pack_dir, update, {self.members[p].run_name(): line for p, line in self.failed.items()}
                )
            return self.pack_dir / pack_files.PACK
        assert saved is not None
        return saved

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t_start if self._t_start is not None else 0.0)

    def timing(self) -> dict[str, float]:
        """Seconds of this process in each phase (:func:`timing_split`)."""
        c = self.collector
        return timing_split(self.ppo.phase_time, c.time_env, c.time_policy)

    def summary(self, p: int = 0) -> dict[str, Any]:
        c, m = self.collector, self.members[p]
        return run_summary(
            m,
            updates=self.rows[p] if self.P > 1 else self.updates_done,
            total_steps=c.global_step,
            returns=c.episodes[p].returns,
            last_eval=self.last_eval[p],
            wall_time_s=self.elapsed_now(),
            checkpoint=checkpoint.latest(m.run_path()),
            timing=self.timing(),
        )

    def member_state_dict(self, p: int = 0) -> dict[str, Any]:
        return training_state.capture(self, p)

    def load_state_dict(self, states: Sequence[dict[str, Any]]) -> None:
        training_state.restore(self, states)


def _evaluate(trainer: Trainer, loggers: Sequence[RunLogger], update: int) -> None:
    """Every member's deterministic evaluation (its own eval env seeds and frozen statistics, batched); with
    ``capture_video`` (a solo run) its first episode is recorded too."""
    t0 = time.perf_counter()
    ppo, cfg = trainer.ppo, trainer.cfg
    trainer.last_eval = evaluate(trainer.agent, trainer.members, ppo.obs_norm, cfg.eval_episodes, ppo.alive)
    if cfg.capture_video:
        loggers[0].log_video(cfg, trainer.agent, ppo.obs_norm, update, trainer.collector.global_step)
    ppo.phase_time["eval"] += time.perf_counter() - t0


def _fail(trainer: Trainer, p: int, update: int) -> None:
    """The NaN stop of pack member p: its one line on stderr and in its ``job.json``; the others go on."""
    m = trainer.members[p]
    kept = checkpoint.latest(m.run_path())
    line = (
        f"non-finite loss in update {update} (step {trainer.collector.global_step}); training of this "
        f"member stopped, last good checkpoint kept: {kept if kept else 'none written yet'}"
    )
    trainer.failed[p] = line
    sys.stderr.write(f"error: run {m.run_name()}: {line}\n")
    rundir.write_json(
        m.run_path() / rundir.JOB_STATE,
        {**rundir.read_json(m.run_path() / rundir.JOB_STATE), "state": "FAILED", "error": line},
    )


def _log_members(
    trainer: Trainer,
    rows: Sequence[dict[str, Any]],
    loggers: Sequence[RunLogger],
    hooks: Sequence[Callback],
    update: int,
    evaluated: bool,
    start_step: int,
) -> bool:
    """Each live member's row of ``update`` completed (new episodes, evaluation, time, steps/s), shown to the hooks
    and logged; True when a hook asks the run to stop."""
    stop = False
    seconds = max(time.perf_counter() - (trainer._t_start or 0.0), 1e-9)
    for p, (row, logger) in enumerate(zip(rows, loggers)):
        if p in trainer.failed:
            continue
        episodes, trainer.episodes_logged[p] = logger.log_new_episodes(
            trainer.collector.episodes[p], trainer.episodes_logged[p]
        )
        row.update(episodes)
        if evaluated:
            returns = trainer.last_eval[p]
            assert returns is not None  # the evaluation of this update just ran
            row["eval_return_mean"] = float(np.mean(returns))
            stop |= any(h.on_evaluation(trainer.views[p], update, returns) is False for h in hooks)
        row["time_s"] = trainer.elapsed_now()
        row["sps"] = (trainer.collector.global_step - start_step) / seconds
        stop |= any(h.on_update(trainer.views[p], row) is False for h in hooks)
        logger.log_update(row)
        trainer.rows[p] = update
    return stop


def run_training(
    cfg: Config,
    resume_from: Path | None = None,
    signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
    on_signal: Callable[[int], None] | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train the run of a prepared ``cfg`` (from ``resume_from`` when given) and return its summary.

    ``signals`` stop the run after the update in flight, checkpointed (:mod:`ppo_pipeline.run.preemption`);
    ``on_signal(signum)`` runs as one arrives. (Env worker processes never see these signals: see
    :func:`ppo_pipeline.envs.gymnasium.make_vector_env`.) ``callbacks``: :mod:`.callbacks`.
    """
    trainer = Trainer(cfg, callbacks)
    trainer.checkpoint_on_signal(*signals, on_signal=on_signal)
    try:
        return trainer.train(resume_from)
    finally:
        ranked.leave()
