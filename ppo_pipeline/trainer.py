"""Algorithm 1 of the paper, one stage per line:

    for iteration = 1, 2, ...:
        batch = collector.collect()             # N actors x T steps       -> TensorDict [N, T]
        gae(batch)                              # A_1..A_T (Eq. 11)        -> + advantage, value_target
        for mb in sampler(batch):               # K epochs, minibatch M <= NT
            loss = total_loss(objective(mb))    # -L^{CLIP+VF+S} (Eq. 9); one Adam step
        schedules (alpha), KL beta rule, log, evaluate, checkpoint

One iteration is :meth:`Trainer.train_update`; :meth:`Trainer.train` is the run around it (logging,
evaluation and checkpoint cadence, preemption). Checkpoint state, signals, evaluation and the summary
each live in their own module (:mod:`checkpoint`, :mod:`preemption`, :mod:`evaluation`, :mod:`metrics`).
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tensordict import TensorDict

from . import checkpoint, compiling, rundir, training_state
from .advantages import explained_variance, make_gae
from .collect import Collector
from .config import Config, env_seeds
from .envs import make_vector_env
from .evaluation import evaluate
from .metrics import RunLogger, progress_bar, run_summary, show_progress, timing_split
from .models import Agent
from .normalize import ObsNormalizer, RewardScaler
from .objectives import KLController, LossTotals, get_beta, make_loss, mean_kl, set_beta, set_clip_epsilon
from .preemption import DeferredSignals, TrainingInterrupted
from .sampler import MinibatchSampler

__all__ = ["Trainer", "TrainingError", "TrainingInterrupted", "run_training", "set_threads"]


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message names the update and the checkpoint kept."""


def diverged(loss: float, update: int, step: int, kept: Path | None) -> TrainingError:
    """The NaN stop's one line: what went non-finite, where, and the last good checkpoint (kept)."""
    what = f"loss ({loss})" if not np.isfinite(loss) else "parameters after the Adam steps"
    return TrainingError(f"non-finite {what} in update {update} (step {step}); "
                         f"training stopped, last good checkpoint kept: {kept if kept else 'none written yet'}")


def set_threads(n: int) -> None:
    """Set torch's intra-op threads deliberately; 0 means the cores this process may use.

    Under SLURM that is ``SLURM_CPUS_PER_TASK`` (clusters without CPU binding would otherwise let every
    job of a node start one thread per core: oversubscribed OpenMP threads spin and run several times
    slower); elsewhere the process's CPU affinity set.
    """
    if not n:
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if slurm.isdigit() and int(slurm) > 0:
            n = int(slurm)
        else:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(n)


class Trainer:
    """Owns the stages of one run and the state a checkpoint needs."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.run_path = cfg.run_path()
        self.run_path.mkdir(parents=True, exist_ok=True)
        cfg.save(self.run_path / rundir.CONFIG)   # first: from here on the folder is a run that --resume takes
        set_threads(cfg.torch_threads)
        self.device = torch.device(cfg.device)
        checkpoint.seed_everything(cfg.seed)
        self.envs = make_vector_env(cfg, cfg.num_envs)
        try:
            self._build(cfg)
        except BaseException:     # Ctrl-C during start-up included: close the env workers
            self.envs.close()
            raise

    def _build(self, cfg: Config) -> None:
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        self.obs_norm = ObsNormalizer(obs_space.shape, cfg.clip_obs) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, cfg.clip_reward) if cfg.scale_reward else None
        self.agent = Agent(obs_space, act_space, cfg).to(self.device)
        self.loss = make_loss(cfg, self.agent).to(self.device)
        self.gae = make_gae(cfg).to(self.device)
        self.params = list(self.agent.parameters())
        # Adam eps 1e-5 (37 details #3); the fused kernel (one call for all parameters, CPU and CUDA)
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        compile_it = compiling.wanted(cfg.compile, pixels=self.agent.pixels, device=self.device,
                                      minibatch_steps=compiling.minibatch_steps(cfg.num_updates, cfg.epochs,
                                                                                cfg.batch_size, cfg.minibatch_size))
        # the update (loss + backward) and the collector's policy call, compiled where it pays
        self.update_step = compiling.MaybeCompiled(compiling.loss_step(self.loss), compile_it, "update",
                                                   before_retry=self.optimizer.zero_grad)
        self.agent.act = compiling.MaybeCompiled(self.agent.act, compile_it, "policy")
        if cfg.collector == "torchrl":   # torchrl's Collector / MultiSyncCollector, the same batch
            from .collect_torchrl import TorchRLCollector

            self.collector: Collector | TorchRLCollector = TorchRLCollector(
                self.envs, self.agent, cfg.num_steps, self.device, obs_norm=self.obs_norm,
                reward_scaler=self.reward_scaler, workers=cfg.collector_workers,
                make_envs=functools.partial(make_vector_env, cfg))
        else:
            self.collector = Collector(self.envs, self.agent, cfg.num_steps, self.device,
                                       obs_norm=self.obs_norm, reward_scaler=self.reward_scaler)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.sampler = MinibatchSampler(cfg.epochs, cfg.minibatch_size, self.generator)
        self.kl_controller = KLController(cfg.kl_target) if cfg.objective == "kl_adaptive" else None
        self.updates_done = 0
        self.elapsed = 0.0            # wall time of earlier processes of this run (resume)
        self.last_eval: list[float] | None = None
        self.episodes_logged = 0
        self.phase_time: dict[str, float] = defaultdict(float)  # seconds per phase, this process
        self.stop_signals: tuple[int, ...] = ()
        self.on_signal: Callable[[int], None] | None = None
        self._t_start: float | None = None

    # ------------------------------------------------------------------------------------------------
    # Algorithm 1
    # ------------------------------------------------------------------------------------------------
    def train_update(self, update: int) -> dict[str, Any]:
        """One iteration of Algorithm 1; returns the metrics row (without episodes and timing)."""
        cfg = self.cfg
        alpha = 1.0 - (update - 1) / cfg.num_updates if cfg.anneal else 1.0  # Table 5: alpha 1 -> 0
        lr, eps = cfg.lr * alpha, cfg.clip_epsilon * alpha
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        set_clip_epsilon(self.loss, eps)

        t0 = time.perf_counter()
        batch = self.collector.collect()                  # TensorDict [N, T]
        t1 = time.perf_counter()
        self.gae(batch)                                    # + advantage, value_target
        t2 = time.perf_counter()
        stats = self.learn(batch, update)                  # K epochs x minibatches of Adam
        t3 = time.perf_counter()
        self.phase_time["collect"] += t1 - t0
        self.phase_time["gae"] += t2 - t1
        self.phase_time["update"] += t3 - t2

        row: dict[str, Any] = {"update": update, "step": self.collector.global_step, "lr": lr,
                               "clip_epsilon": eps if cfg.objective == "clip" else None, **stats}
        if cfg.objective in ("kl_adaptive", "kl_fixed"):
            d = mean_kl(self.agent, batch.reshape(-1))
            row["kl"] = d
            row["kl_beta"] = get_beta(self.loss)           # the beta this update was trained with
            if self.kl_controller is not None:             # Sec. 4: adapt beta after the update
                set_beta(self.loss, self.kl_controller.next_beta(get_beta(self.loss), d))
        row["explained_variance"] = explained_variance(batch)
        return row

    def learn(self, batch: TensorDict, update: int) -> dict[str, float]:
        """K epochs of minibatch Adam steps on -L^{CLIP+VF+S}; returns the update's mean loss terms."""
        cfg = self.cfg
        totals = LossTotals(cfg.value_coef)
        try:
            for mb in self.sampler(batch):
                self.optimizer.zero_grad(set_to_none=True)
                terms = self.update_step(mb)              # -L^{CLIP+VF+S} (Eq. 9), and its backward
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                totals.add(terms)
            stats = totals.means()    # one device sync per update
        except (RuntimeError, ValueError):   # e.g. a distribution of NaN parameters refuses to sample
            if self._finite_parameters():
                raise
            stats = {"loss": float("nan")}
        if not np.isfinite(stats["loss"]) or not self._finite_parameters():   # diverged: the NaN stop
            raise diverged(stats["loss"], update, self.collector.global_step, checkpoint.latest(self.run_path))
        stats.pop("loss")
        return stats

    def _finite_parameters(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.params)

    # ------------------------------------------------------------------------------------------------
    # The run
    # ------------------------------------------------------------------------------------------------
    def checkpoint_on_signal(self, *signums: int, on_signal: Callable[[int], None] | None = None) -> None:
        """Make :meth:`train` finish the update in flight and checkpoint when one of ``signums`` arrives,
        then pass the signal on (:mod:`ppo_pipeline.preemption`). Call from the main thread."""
        self.stop_signals = tuple(int(s) for s in signums)
        self.on_signal = on_signal

    def train(self, resume_from: Path | None = None, stop_after: int | None = None) -> dict[str, Any]:
        """Run ``cfg.num_updates`` updates (or ``stop_after``, for tests); returns the summary.

        A checkpoint is written every ``checkpoint_every`` updates, after the last update, when
        ``stop_after`` stops the run early, and when a signal of :meth:`checkpoint_on_signal` arrives.
        Resuming from any of them continues ``metrics.csv`` and ``episodes.csv`` row for row and ends
        in the same state as an uninterrupted run (CPU).
        """
        cfg = self.cfg
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
                    row = self.train_update(update)
                    self.updates_done = update
                    episodes, self.episodes_logged = logger.log_new_episodes(self.collector.episodes,
                                                                             self.episodes_logged)
                    row.update(episodes)
                    last = update == cfg.num_updates
                    if cfg.eval_episodes and (last or (cfg.eval_every and update % cfg.eval_every == 0)):
                        row["eval_return_mean"] = self._evaluate(logger, update)
                    row["time_s"] = self.elapsed_now()
                    row["sps"] = (self.collector.global_step - start_step) / max(time.perf_counter() - self._t_start, 1e-9)
                    logger.log_update(row)
                    stop = stop_after is not None and update >= stop_after
                    pending = signals.pending and not last
                    if last or stop or pending or update % cfg.checkpoint_every == 0:
                        saved = checkpoint.save(self.run_path, update, self.state_dict())
                    show_progress(bar, row)
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
            self.envs.close()
        summary = self.summary()
        if self.updates_done == cfg.num_updates:
            rundir.write_json(self.run_path / rundir.SUMMARY, summary)
        return summary

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
        self.last_eval = evaluate(self.agent, self.cfg, self.obs_norm, self.cfg.eval_episodes)
        if self.cfg.capture_video:
            logger.log_video(self.cfg, self.agent, self.obs_norm, update, self.collector.global_step)
        self.phase_time["eval"] += time.perf_counter() - t0
        return float(np.mean(self.last_eval))

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t_start if self._t_start is not None else 0.0)

    def summary(self) -> dict[str, Any]:
        c = self.collector
        return run_summary(self.cfg, updates=self.updates_done, total_steps=c.global_step,
                           returns=c.episodes.returns, last_eval=self.last_eval, wall_time_s=self.elapsed_now(),
                           checkpoint=checkpoint.latest(self.run_path),
                           timing=timing_split(self.phase_time, c.time_env, c.time_policy))

    # ------------------------------------------------------------------------------------------------
    # Checkpoint state (what goes in it: :mod:`ppo_pipeline.training_state`)
    # ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return training_state.capture(self)

    def load_state_dict(self, s: dict[str, Any]) -> None:
        training_state.restore(self, s)



def run_training(cfg: Config, resume_from: Path | None = None,
                 signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT),
                 on_signal: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Train the run of a prepared ``cfg`` (from ``resume_from`` when given) and return its summary.

    ``signals`` stop the run after the update in flight, checkpointed (:mod:`ppo_pipeline.preemption`);
    ``on_signal(signum)`` runs as one arrives. (Env worker processes never see these signals: see
    :func:`ppo_pipeline.envs.gymnasium.make_vector_env`.)
    """
    trainer = Trainer(cfg)
    trainer.checkpoint_on_signal(*signals, on_signal=on_signal)
    return trainer.train(resume_from)
