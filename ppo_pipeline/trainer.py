"""Algorithm 1 of the paper, one stage per line:

    for iteration = 1, 2, ...:
        batch = collector.collect()            # N actors x T steps       -> TensorDict [N, T]
        gae(batch)                              # A_1..A_T (Eq. 11)        -> + advantage, value_target
        for mb in sampler(batch):               # K epochs, minibatch M <= NT
            loss = objective(mb); Adam step     # L^{CLIP+VF+S} (Eq. 9)
        schedules (alpha), KL beta rule, log, evaluate, checkpoint

The whole walk is :meth:`Trainer.train_update`; everything else here is set-up and bookkeeping.
"""

from __future__ import annotations

import pickle
import random
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict
from tqdm import tqdm

from . import checkpoint
from .collect import Collector, EpisodeLog, env_action, obs_tensor
from .config import Config
from .envs import ObsNormalizer, RewardScaler, env_seeds, make_vector_env
from .metrics import RunLogger, write_summary
from .models import Agent, build_agent
from .objectives import KLController, get_beta, make_gae, make_loss, mean_kl, set_beta, set_clip_epsilon
from .sampler import MinibatchSampler


class TrainingError(RuntimeError):
    """Training cannot go on (a non-finite loss); the message names the update and the checkpoint kept."""


class TrainingInterrupted(RuntimeError):
    """A signal asked the run to stop; a checkpoint of the last finished update was written first."""

    def __init__(self, signum: int, update: int, path: Path):
        self.signum, self.update, self.path = signum, update, path
        super().__init__(f"{signal.Signals(signum).name} received: stopped after update {update}, "
                         f"checkpoint {path}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int) -> None:
    """Set torch's intra-op threads deliberately; 0 means the cores this process may use.

    Under SLURM that is ``SLURM_CPUS_PER_TASK`` (clusters without CPU binding would otherwise let every
    job of a node start one thread per core: oversubscribed OpenMP threads spin and run several times
    slower); elsewhere the process's CPU affinity set.
    """
    import os

    if not n:
        slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")
        if slurm.isdigit() and int(slurm) > 0:
            n = int(slurm)
        else:
            n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(n)


@torch.no_grad()
def evaluate(agent: Agent, cfg: Config, obs_norm: ObsNormalizer | None, episodes: int) -> list[float]:
    """Deterministic policy (argmax / mean) on fresh eval envs, one episode each, real game score.

    Eval envs have no life-loss episodes and no reward clipping, and observe through a *frozen* copy
    of the training normalization statistics.
    """
    envs = make_vector_env(cfg, episodes, evaluation=True)
    norm = obs_norm.frozen_copy() if obs_norm is not None else None
    device = next(agent.parameters()).device
    try:
        obs, _ = envs.reset(seed=env_seeds(cfg.seed, episodes, evaluation=True))
        returns = np.zeros(episodes)
        running = np.ones(episodes, dtype=bool)
        for _ in range(cfg.eval_max_steps):
            x = norm(obs, update=False) if norm is not None else obs
            action = env_action(agent.act(obs_tensor(x, device), deterministic=True)["action"],
                                envs.single_action_space)
            obs, reward, term, trunc, _ = envs.step(action)
            returns += reward * running
            running &= ~(term | trunc)
            if not running.any():
                break
    finally:
        envs.close()
    return [float(r) for r in returns]


def _pickle_envs(envs: gym.vector.VectorEnv) -> bytes | None:
    """The in-process env state (for an exact resume); None where it can't be pickled (subprocess envs)."""
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        return None
    try:
        import cloudpickle

        return cloudpickle.dumps(envs)
    except Exception:
        return None


class Trainer:
    """Owns the stages of one run and the state a checkpoint needs."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.run_path = cfg.run_path()
        self.run_path.mkdir(parents=True, exist_ok=True)
        set_threads(cfg.torch_threads)
        self.device = torch.device(cfg.device)
        seed_everything(cfg.seed)
        self.envs = make_vector_env(cfg, cfg.num_envs)
        obs_space, act_space = self.envs.single_observation_space, self.envs.single_action_space
        self.obs_norm = ObsNormalizer(obs_space.shape, cfg.clip_obs) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, cfg.clip_reward) if cfg.scale_reward else None
        self.agent = build_agent(obs_space, act_space, cfg).to(self.device)
        self.loss = make_loss(cfg, self.agent).to(self.device)
        self.gae = make_gae(cfg).to(self.device)
        # Adam eps 1e-5 (37 details #3); fused on CUDA, foreach on CPU.
        self.optimizer = torch.optim.Adam(self.agent.parameters(), lr=cfg.lr, eps=cfg.adam_eps,
                                          **({"fused": True} if self.device.type == "cuda" else {}))
        self.collector = Collector(self.envs, self.agent, cfg.num_steps, self.device,
                                   obs_norm=self.obs_norm, reward_scaler=self.reward_scaler)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.sampler = MinibatchSampler(cfg.epochs, cfg.minibatch_size, self.generator)
        self.kl_controller = KLController(cfg.kl_target) if cfg.objective == "kl_adaptive" else None
        self.update = 0
        self.elapsed = 0.0          # wall time of earlier processes of this run (resume)
        self.last_eval: list[float] | None = None
        self.episodes_logged = 0
        self.timing: dict[str, float] = defaultdict(float)  # seconds per phase, this process

    # ------------------------------------------------------------------------------------------------
    def train_update(self, update: int) -> dict[str, Any]:
        """One iteration of Algorithm 1; returns the metrics row (without timing)."""
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
        stats = self.optimise(batch, update)               # K epochs x minibatches of Adam
        t3 = time.perf_counter()
        self.timing["collect"] += t1 - t0
        self.timing["gae"] += t2 - t1
        self.timing["update"] += t3 - t2

        row: dict[str, Any] = {"update": update, "step": self.collector.global_step, "lr": lr,
                               "clip_epsilon": eps if cfg.objective == "clip" else None}
        row.update(stats)
        if cfg.objective in ("kl_adaptive", "kl_fixed"):
            d = mean_kl(self.agent, batch.reshape(-1))
            row["kl"] = d
            row["kl_beta"] = get_beta(self.loss)           # the beta this update was trained with
            if self.kl_controller is not None:             # Sec. 4: adapt beta after the update
                set_beta(self.loss, self.kl_controller.update(get_beta(self.loss), d))
        value, target = batch["state_value"], batch["value_target"]
        var = torch.var(target)
        row["explained_variance"] = float(1 - torch.var(target - value) / var) if var > 0 else float("nan")
        return row

    def optimise(self, batch: TensorDict, update: int) -> dict[str, float]:
        cfg = self.cfg
        totals: dict[str, torch.Tensor] = defaultdict(lambda: torch.zeros((), device=self.device))
        n = 0
        for mb in self.sampler(batch):
            out = self.loss(mb)
            loss = out["loss_objective"]
            if "loss_critic" in out.keys():
                loss = loss + out["loss_critic"]
            if "loss_entropy" in out.keys():
                loss = loss + out["loss_entropy"]
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(self.agent.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            totals["loss"] += loss.detach()
            totals["policy_loss"] += out["loss_objective"].detach()
            if "loss_critic" in out.keys():
                totals["value_loss"] += out["loss_critic"].detach() / max(cfg.value_coef, 1e-12)
            if "entropy" in out.keys():
                totals["entropy"] += out["entropy"].detach()
            totals["approx_kl"] += out["kl_approx"].detach()
            if "clip_fraction" in out.keys():
                totals["clip_fraction"] += out["clip_fraction"].detach()
            n += 1
        stats = {k: float(v) / n for k, v in totals.items()}    # one device sync per update
        if not np.isfinite(stats["loss"]):
            kept = checkpoint.latest(self.run_path)
            raise TrainingError(
                f"non-finite loss ({stats['loss']}) in update {update} (step {self.collector.global_step}); "
                f"training stopped, last good checkpoint kept: {kept if kept else 'none written yet'}")
        stats.pop("loss")
        return stats

    # ------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        c = self.collector
        return {
            "config": self.cfg.to_dict(),
            "agent": self.agent.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "loss": self.loss.state_dict(),
            "obs_norm": self.obs_norm.state_dict() if self.obs_norm else None,
            "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
                    "sampler": self.generator.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            "collector": {"obs": c.obs, "global_step": c.global_step, "episodes": vars(c.episodes)},
            "envs": _pickle_envs(self.envs),
            "logger": {"metrics_rows": self.update, "episodes_rows": self.episodes_logged},
            "elapsed": self.elapsed_now(),
            "last_eval": self.last_eval,
        }

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.agent.load_state_dict(s["agent"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.loss.load_state_dict(s["loss"])
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(s["obs_norm"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(s["reward_scaler"])
        rng = s["rng"]
        torch.set_rng_state(rng["torch"])
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.generator.set_state(rng["sampler"])
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        c = self.collector
        if s["envs"] is not None:
            self.envs.close()
            self.envs = pickle.loads(s["envs"])
            c.envs = self.envs
            c.obs = s["collector"]["obs"]
        else:  # subprocess envs cannot be snapshotted: restart their episodes with fresh derived seeds
            c.reset([x + s["update"] * 1000 for x in env_seeds(self.cfg.seed, self.cfg.num_envs)])
        c.global_step = s["collector"]["global_step"]
        c.episodes = EpisodeLog(**s["collector"]["episodes"])
        self.update = s["update"]
        self.elapsed = s["elapsed"]
        self.last_eval = s.get("last_eval")
        self.episodes_logged = s["logger"]["episodes_rows"]

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t_start if hasattr(self, "_t_start") else 0.0)

    # ------------------------------------------------------------------------------------------------
    # Checkpoint on signal (preemption). A signal can land anywhere inside an update, where the state
    # is half-way (some Adam steps taken, part of a batch collected). The handler installed here only
    # records it; at the end of the update the trainer writes a checkpoint and then hands each signal
    # received to the handler that was installed before: under SLURM, submitit's SIGUSR2 handler calls
    # ``checkpoint()`` of the job's :class:`~submitit.helpers.Checkpointable`, requeues the job and
    # exits; submitit's SIGTERM handler ignores the signal, so training goes on (with a fresh
    # checkpoint). Where no Python handler was installed before (or Python's Ctrl-C default),
    # :class:`TrainingInterrupted` is raised.
    _signal_checkpoint: tuple[int, ...] = ()
    _pending_signals: tuple[int, ...] = ()
    _defer_handler: Any = None

    def checkpoint_on_signal(self, *signums: int) -> None:
        """Make :meth:`train` finish the update in flight and checkpoint when one of ``signums`` arrives,
        then pass the signal on (see above).

        Must be called from the main thread before :meth:`train`; the handlers live for ``train``'s duration.
        """
        self._signal_checkpoint = tuple(int(s) for s in signums)

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}

        def defer(signum: int, frame: Any) -> None:
            if signum not in self._pending_signals:
                self._pending_signals += (signum,)
                return
            if signum != signal.SIGINT:   # SLURM may deliver a signal twice: one is enough
                return
            # a second Ctrl-C does not wait for the update to end (the newest checkpoint stays valid)
            handler = previous.get(signum)
            self._restore_signal_handlers(previous)
            if callable(handler):
                handler(signum, frame)
            else:
                signal.raise_signal(signum)

        for signum in self._signal_checkpoint:
            previous[signum] = signal.signal(signum, defer)
        self._defer_handler = defer
        return previous

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _deliver_pending_signals(self, previous: dict[int, Any], update: int, saved: Path) -> None:
        """After the checkpoint ``saved`` of ``update``: hand each signal received to the handler that
        was there before. Returns when all of them returned (training goes on), else raises."""
        pending, self._pending_signals = self._pending_signals, ()

        def foreign(signum: int) -> bool:
            handler = previous.get(signum)
            return callable(handler) and handler is not signal.default_int_handler

        for signum in sorted(pending, key=lambda s: not foreign(s)):   # handlers first, then stop
            if foreign(signum):
                # SLURM signals every process of the job step, sometimes twice: while the handler runs
                # (and in the `scontrol requeue` it starts, which inherits the disposition) ignore it
                signal.signal(signum, signal.SIG_IGN)
                previous[signum](signum, None)   # submitit USR2: checkpoint() + requeue + sys.exit
                signal.signal(signum, self._defer_handler)   # it returned: training goes on
            else:
                raise TrainingInterrupted(signum, update, saved)

    # ------------------------------------------------------------------------------------------------
    def train(self, resume_from: Path | None = None, stop_after: int | None = None) -> dict[str, Any]:
        """Run to ``cfg.total_steps`` (or ``stop_after`` updates, for tests); returns the summary.

        A checkpoint is written every ``checkpoint_every`` updates, after the last update, when
        ``stop_after`` stops the run early, and when a signal of :meth:`checkpoint_on_signal` arrives.
        Resuming from any of them continues ``metrics.csv`` and ``episodes.csv`` row for row and ends
        in the same state as an uninterrupted run (CPU).
        """
        cfg = self.cfg
        if resume_from is not None:
            self.load_state_dict(checkpoint.load(resume_from))
        # on resume, TensorBoard drops the events past the checkpoint's step (they are redone)
        logger = RunLogger(self.run_path, cfg.tensorboard,
                           purge_step=self.collector.global_step + 1 if resume_from is not None else None)
        if resume_from is not None:
            logger.metrics.truncate(self.update)            # rows past the checkpoint are redone
            logger.episodes.truncate(self.episodes_logged)
        else:
            cfg.save(self.run_path / "config.json")
            logger.metrics.truncate(0)                     # a restart from scratch starts the logs anew
            logger.episodes.truncate(0)
            self.collector.reset(env_seeds(cfg.seed, cfg.num_envs))
        self._t_start = time.perf_counter()
        start_step = self.collector.global_step
        bar = tqdm(total=cfg.total_steps, initial=start_step, disable=not cfg.progress, unit="step",
                   dynamic_ncols=True, desc=cfg.run_name(),
                   mininterval=0.5 if sys.stderr.isatty() else 30.0)  # a log file gets a line per 30 s
        previous_handlers = self._install_signal_handlers()
        try:
            for update in range(self.update + 1, cfg.num_updates + 1):
                row = self.train_update(update)
                self.update = update
                eps = self.collector.episodes
                new = slice(self.episodes_logged, len(eps.returns))
                logger.log_episodes(eps.steps[new], eps.returns[new], eps.lengths[new])
                recent = eps.returns[new]
                self.episodes_logged = len(eps.returns)
                row.update(_episode_row(recent, eps.lengths[new], eps.returns[-100:]))
                last = update == cfg.num_updates
                if cfg.eval_episodes and (last or (cfg.eval_every and update % cfg.eval_every == 0)):
                    t_eval = time.perf_counter()
                    self.last_eval = evaluate(self.agent, cfg, self.obs_norm, cfg.eval_episodes)
                    row["eval_return_mean"] = float(np.mean(self.last_eval))
                    self.timing["eval"] += time.perf_counter() - t_eval
                now = time.perf_counter()
                row["time_s"] = self.elapsed_now()
                row["sps"] = (self.collector.global_step - start_step) / max(now - self._t_start, 1e-9)
                logger.log_update(row)
                stop = stop_after is not None and update >= stop_after
                pending = bool(self._pending_signals) and not last
                saved = None
                if last or update % cfg.checkpoint_every == 0 or stop or pending:
                    saved = checkpoint.save(self.run_path, update, self.state_dict())
                bar.update(self.collector.global_step - bar.n)
                bar.set_postfix(sps=f"{row['sps']:.0f}", ret100=f"{row['return_mean_100']:.1f}"
                                if row.get("return_mean_100") is not None else "-")
                if pending:
                    if logger.tb is not None:
                        logger.tb.flush()   # the process may exit in the handler
                    assert saved is not None
                    self._deliver_pending_signals(previous_handlers, update, saved)
                if stop:
                    break
        finally:
            self._restore_signal_handlers(previous_handlers)
            self._pending_signals = ()
            bar.close()
            logger.close()
            self.envs.close()
        summary = self.summary()
        if self.update == cfg.num_updates:
            write_summary(self.run_path / "summary.json", summary)
        return summary

    def summary(self) -> dict[str, Any]:
        eps = self.collector.episodes
        last100 = eps.returns[-100:]
        return {
            "env_id": self.cfg.env_id, "objective": self.cfg.objective, "seed": self.cfg.seed,
            "status": "finished" if self.update == self.cfg.num_updates else "partial",
            "updates": self.update, "total_steps": self.collector.global_step,
            "final_eval_return_mean": float(np.mean(self.last_eval)) if self.last_eval else None,
            "final_eval_returns": self.last_eval,
            "last100_return_mean": float(np.mean(last100)) if last100 else None,
            "train_return_mean_all": float(np.mean(eps.returns)) if eps.returns else None,
            "episodes": len(eps.returns),
            "wall_time_s": round(self.elapsed_now(), 2),
            "checkpoint": str(checkpoint.latest(self.run_path) or ""),
            "timing_s": self.timing_split(),
        }

    def timing_split(self) -> dict[str, float]:
        """Seconds of this process in env stepping, policy inference, GAE, update, evaluation."""
        c = self.collector
        t = dict(self.timing)
        return {"env": round(c.time_env, 3), "policy": round(c.time_policy, 3),
                "collect_other": round(t.get("collect", 0.0) - c.time_env - c.time_policy, 3),
                "gae": round(t.get("gae", 0.0), 3), "update": round(t.get("update", 0.0), 3),
                "eval": round(t.get("eval", 0.0), 3)}


def _episode_row(returns: list, lengths: list, last100: list) -> dict[str, Any]:
    if not returns:
        row: dict[str, Any] = {"episodes": 0}
    else:
        row = {"episodes": len(returns), "episode_return_mean": float(np.mean(returns)),
               "episode_return_min": float(np.min(returns)), "episode_return_max": float(np.max(returns)),
               "episode_length_mean": float(np.mean(lengths))}
    row["return_mean_100"] = float(np.mean(last100)) if last100 else None
    return row


def train(cfg: Config, resume_from: Path | None = None) -> dict[str, Any]:
    """Train one run described by a validated ``cfg``; outputs go to ``cfg.run_path()``."""
    return Trainer(cfg).train(resume_from)
