"""The run around Algorithm 1: logging, the evaluation cadence, checkpoints, signals and hooks.

:class:`~ppo_pipeline.algo.ppo.PPO` is the algorithm (collect, GAE, K epochs of Adam, schedules, the KL
rule); :class:`Trainer` runs its iterations and does what a run needs around them:

    for update in 1..K:
        row = ppo.update(update)                  # Algorithm 1, one iteration
        + new episodes; evaluate every eval_every updates and at the end
        hooks (callbacks) see the row; log it (metrics.csv, TensorBoard, W&B)
        checkpoint every checkpoint_every updates, at the end, and when a signal or a hook stops the run

Checkpoint contents: :mod:`.training_state`; signals: :mod:`.preemption`; evaluation:
:mod:`ppo_pipeline.algo.evaluation`; what is written: :mod:`.metrics`.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..algo.evaluation import evaluate
from ..algo.ppo import PPO, Diverged
from ..config import Config
from ..envs import make_vector_env
from ..envs.seeds import env_seeds
from . import checkpoint, rundir, training_state
from .callbacks import Callback, StopAfter
from .metrics import RunLogger, progress_bar, run_summary, show_progress, timing_split
from .preemption import DeferredSignals, TrainingInterrupted
from .threads import Threads

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "run_training"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message names the update and the checkpoint kept."""


class Trainer:
    """One run: its directory, its algorithm (:attr:`ppo`), and the state a checkpoint needs."""

    def __init__(self, cfg: Config, callbacks: Sequence[Callback] = ()):
        self.cfg = cfg
        self.run_path = cfg.run_path()
        self.run_path.mkdir(parents=True, exist_ok=True)
        rundir.write_config(self.run_path, cfg)   # first: from here on the folder is a run that --resume takes
        self.threads = Threads(cfg.torch_threads)     # the cores free now, looked at again as it runs
        checkpoint.seed_everything(cfg.seed)
        envs = make_vector_env(cfg, cfg.num_envs)
        try:
            self.ppo = PPO(cfg, envs, torch.device(cfg.device))
        except BaseException:     # Ctrl-C during start-up included: close the env workers
            envs.close()
            raise
        self.callbacks = list(callbacks)
        self.updates_done = 0
        self.elapsed = 0.0            # wall time of earlier processes of this run (resume)
        self.last_eval: list[float] | None = None
        self.episodes_logged = 0
        self.stop_signals: tuple[int, ...] = ()
        self.on_signal: Callable[[int], None] | None = None
        self._t_start: float | None = None

    @property
    def agent(self):
        return self.ppo.agent

    @property
    def collector(self):
        return self.ppo.collector

    def checkpoint_on_signal(self, *signums: int, on_signal: Callable[[int], None] | None = None) -> None:
        """Make :meth:`train` finish the update in flight and checkpoint when one of ``signums`` arrives,
        then pass the signal on (:mod:`ppo_pipeline.run.preemption`). Call from the main thread."""
        self.stop_signals = tuple(int(s) for s in signums)
        self.on_signal = on_signal

    def train(self, resume_from: Path | None = None, stop_after: int | None = None) -> dict[str, Any]:
        """Run ``cfg.num_updates`` updates (``stop_after``: stop after that many, see :class:`StopAfter`);
        return the summary.

        A checkpoint is written every ``checkpoint_every`` updates, after the last update, when a hook stops
        the run, and when a signal of :meth:`checkpoint_on_signal` arrives. Resuming from any of them
        continues ``metrics.csv`` and ``episodes.csv`` row for row and ends in the same state as an
        uninterrupted run (CPU).
        """
        cfg = self.cfg
        hooks = self.callbacks + ([StopAfter(stop_after)] if stop_after is not None else [])
        logger: RunLogger | None = None
        bar = None
        try:
            with DeferredSignals(self.stop_signals, self.on_signal) as signals:
                logger = self._start(resume_from)
                if signals.pending:   # came during start-up: stop at the checkpoint just written or loaded
                    signals.deliver(self.updates_done, checkpoint.latest(self.run_path))
                self._t_start = time.perf_counter()
                start_step = self.collector.global_step
                bar = progress_bar(cfg, start_step)
                for update in range(self.updates_done + 1, cfg.num_updates + 1):
                    row = self._update(update)
                    self.updates_done = update
                    episodes, self.episodes_logged = logger.log_new_episodes(self.collector.episodes,
                                                                             self.episodes_logged)
                    row.update(episodes)
                    last = update == cfg.num_updates
                    stop = False
                    if cfg.eval_episodes and (last or (cfg.eval_every and update % cfg.eval_every == 0)):
                        row["eval_return_mean"] = self._evaluate(logger, update)
                        stop |= any(h.on_evaluation(self, update, self.last_eval) is False for h in hooks)
                    row["time_s"] = self.elapsed_now()
                    row["sps"] = (self.collector.global_step - start_step) / max(time.perf_counter() - self._t_start, 1e-9)
                    stop |= any(h.on_update(self, row) is False for h in hooks)
                    logger.log_update(row)
                    pending = signals.pending and not last
                    if last or stop or pending or update % cfg.checkpoint_every == 0:
                        saved = checkpoint.save(self.run_path, update, self.state_dict())
                    show_progress(bar, row)
                    self.threads.check()
                    if pending:
                        logger.flush()   # the process may exit in the handler
                        signals.deliver(update, saved)
                    if stop:
                        break
        finally:
            if bar is not None:
                bar.close()
            if logger is not None:
                logger.close()
            self.collector.shutdown()
            self.ppo.envs.close()
        summary = self.summary()
        if self.updates_done == cfg.num_updates:
            rundir.write_json(self.run_path / rundir.SUMMARY, summary)
        return summary

    def _update(self, update: int) -> dict[str, Any]:
        """One iteration of Algorithm 1; the NaN stop's one line names the last good checkpoint (kept)."""
        try:
            return self.ppo.update(update)
        except Diverged as e:
            kept = checkpoint.latest(self.run_path)
            raise TrainingError(f"{e}; training stopped, last good checkpoint kept: {kept if kept else 'none written yet'}"
                                ) from None

    def _start(self, resume_from: Path | None) -> RunLogger:
        """Load the checkpoint to resume from; or reset the envs and write checkpoint 0, so that a run
        stopped at any moment from here on resumes where it was. Then open the logs, cut to the
        checkpoint (rows past it are redone; a fresh run starts them anew)."""
        if resume_from is not None:
            self.load_state_dict(checkpoint.load(resume_from))
        else:   # a new history: nothing of an earlier run in this directory may be taken for this one's
            for stale in [*checkpoint.all_checkpoints(self.run_path), self.run_path / rundir.SUMMARY]:
                stale.unlink(missing_ok=True)
            self.collector.reset(env_seeds(self.cfg.seed, self.cfg.num_envs))
            checkpoint.save(self.run_path, 0, self.state_dict())
        # on resume, TensorBoard drops the events past the checkpoint's step (they are redone)
        logger = RunLogger.for_run(self.cfg, self.run_path, purge_step=self.collector.global_step + 1)
        logger.metrics.truncate(self.updates_done)
        logger.episodes.truncate(self.episodes_logged)
        return logger

    def _evaluate(self, logger: RunLogger, update: int) -> float:
        """Deterministic evaluation; with ``capture_video`` its first episode is recorded too."""
        t0 = time.perf_counter()
        self.last_eval = evaluate(self.agent, self.cfg, self.ppo.obs_norm, self.cfg.eval_episodes)
        if self.cfg.capture_video:
            logger.log_video(self.cfg, self.agent, self.ppo.obs_norm, update, self.collector.global_step)
        self.ppo.phase_time["eval"] += time.perf_counter() - t0
        return float(np.mean(self.last_eval))

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t_start if self._t_start is not None else 0.0)

    def summary(self) -> dict[str, Any]:
        c = self.collector
        return run_summary(self.cfg, updates=self.updates_done, total_steps=c.global_step,
                           returns=c.episodes.returns, last_eval=self.last_eval, wall_time_s=self.elapsed_now(),
                           checkpoint=checkpoint.latest(self.run_path),
                           timing=timing_split(self.ppo.phase_time, c.time_env, c.time_policy))

    def state_dict(self) -> dict[str, Any]:
        return training_state.capture(self)

    def load_state_dict(self, s: dict[str, Any]) -> None:
        training_state.restore(self, s)


def run_training(cfg: Config, resume_from: Path | None = None,
                 signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
                 on_signal: Callable[[int], None] | None = None, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the run of a prepared ``cfg`` (from ``resume_from`` when given) and return its summary.

    ``signals`` stop the run after the update in flight, checkpointed (:mod:`ppo_pipeline.run.preemption`);
    ``on_signal(signum)`` runs as one arrives. (Env worker processes never see these signals: see
    :func:`ppo_pipeline.envs.gymnasium.make_vector_env`.) ``callbacks``: :mod:`.callbacks`.
    """
    trainer = Trainer(cfg, callbacks)
    trainer.checkpoint_on_signal(*signals, on_signal=on_signal)
    return trainer.train(resume_from)
