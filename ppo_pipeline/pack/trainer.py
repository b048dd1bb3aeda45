"""The run around a pack: what :class:`ppo_pipeline.run.trainer.Trainer` does for one run, for P members.

    for update in 1..K:
        rows, diverged = ppo.update(update)       # every member's iteration, one computation
        per member: new episodes, evaluation (every eval_every updates and at the end), its metrics row
        checkpoint (the pack's state + each member's solo-format slice) every checkpoint_every updates,
        at the end, and when a signal arrives (finish the update, checkpoint, hand the signal on)

A member that diverges stops with the NaN stop's one line (on stderr and in its ``job.json``) while the
others go on. The pack's directory holds its checkpoints (``checkpoint-*.pt``: everything, for an exact
resume on CPU with in-process envs) and ``pack.json`` (its members).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from .. import batch as keys
from ..algo.collect import EpisodeLog
from ..algo.evaluation import Policy, first_episode_returns
from ..algo.spaces import env_action, obs_tensor
from ..config import Config
from ..envs import make_vector_env
from ..envs.seeds import env_seeds, resume_seeds
from ..run import checkpoint, rundir
from ..run.metrics import RunLogger, run_summary, timing_split
from ..run.preemption import DeferredSignals
from ..run.threads import Threads
from . import members as member_files
from .ppo import PackPPO


class PackTrainer:
    """A pack of runs (``members``: configs that can share, :mod:`.plan`) with its directory ``pack_dir``."""

    def __init__(self, members: Sequence[Config], pack_dir: Path):
        self.members, self.pack_dir = list(members), Path(pack_dir)
        self.pack_dir.mkdir(parents=True, exist_ok=True)
        rundir.write_json(self.pack_dir / member_files.PACK, {
            "format": member_files.PACK_FORMAT, "members": [m.run_name() for m in members],
            "run_dirs": [str(m.run_path()) for m in members]})
        for p, m in enumerate(members):
            member_files.write_member_files(m, self.pack_dir, p, len(members))
        cfg = self.cfg = members[0]
        self.threads = Threads(cfg.torch_threads)
        checkpoint.seed_everything(cfg.seed)
        envs = make_vector_env(cfg, len(members) * cfg.num_envs, pack=True)
        try:
            self.ppo = PackPPO(members, envs, torch.device(cfg.device))
        except BaseException:
            envs.close()
            raise
        P = len(members)
        self.updates_done, self.elapsed = 0, 0.0
        self.rows = [0] * P                       # metrics rows written per member (a diverged one stops)
        self.episodes_logged = [0] * P
        self.last_eval: list[list[float] | None] = [None] * P
        self.failed: dict[int, str] = {}
        self.stop_signals: tuple[int, ...] = ()
        self.on_signal: Callable[[int], None] | None = None
        self._t_start: float | None = None

    def checkpoint_on_signal(self, *signums: int, on_signal: Callable[[int], None] | None = None) -> None:
        self.stop_signals, self.on_signal = tuple(int(s) for s in signums), on_signal

    def train(self, resume_from: Path | None = None, stop_after: int | None = None) -> list[dict[str, Any]]:
        """Run every member to ``num_updates`` (from the pack checkpoint ``resume_from``; ``stop_after``: stop
        after that update, checkpointed); the members' summaries."""
        cfg, ppo = self.cfg, self.ppo
        loggers: list[RunLogger] = []
        bar = None
        first_update: dict[str, float] | None = None
        try:
            with DeferredSignals(self.stop_signals, self.on_signal) as signals:
                loggers = self._start(resume_from)
                if signals.pending:
                    signals.deliver(self.updates_done, checkpoint.latest(self.pack_dir))
                self._t_start = time.perf_counter()
                start = ppo.collector.global_step
                bar = tqdm(total=cfg.steps_run * len(self.members), initial=start * len(self.members), unit="step",
                           disable=not cfg.progress, dynamic_ncols=True, desc=self.pack_dir.name,
                           mininterval=0.5 if sys.stderr.isatty() else 30.0)
                for update in range(self.updates_done + 1, cfg.num_updates + 1):
                    rows, diverged = ppo.update(update)
                    self.updates_done = update
                    if first_update is None:
                        first_update = self.timing()     # this process's first update (compiles)
                    for p in diverged:
                        self._fail(p, update)
                    last = update == cfg.num_updates
                    evaluate = cfg.eval_episodes and (last or (cfg.eval_every and update % cfg.eval_every == 0))
                    returns = self._evaluate() if evaluate else None
                    seconds = max(time.perf_counter() - self._t_start, 1e-9)
                    for p, (row, logger) in enumerate(zip(rows, loggers)):
                        if p in self.failed:
                            continue
                        episodes, self.episodes_logged[p] = logger.log_new_episodes(ppo.collector.episodes[p],
                                                                                    self.episodes_logged[p])
                        row.update(episodes)
                        if returns is not None:
                            self.last_eval[p] = returns[p]
                            row["eval_return_mean"] = float(np.mean(returns[p]))
                        row["time_s"] = self.elapsed_now()
                        row["sps"] = (ppo.collector.global_step - start) / seconds
                        logger.log_update(row)
                        self.rows[p] = update
                    pending = signals.pending and not last
                    stop = stop_after is not None and update >= stop_after
                    if last or pending or stop or update % cfg.checkpoint_every == 0:
                        saved = self._save(update)
                    bar.update(ppo.collector.global_step * len(self.members) - bar.n)
                    self.threads.check()
                    if pending:
                        for logger in loggers:
                            logger.flush()
                        signals.deliver(update, saved)
                    if stop:
                        break
        finally:
            if bar is not None:
                bar.close()
            for logger in loggers:
                logger.close()
            ppo.envs.close()
        if first_update is not None:
            member_files.write_timing(self.pack_dir, self.timing(), first_update)
        summaries = [self.summary(p) for p in range(len(self.members))]
        if self.updates_done == cfg.num_updates:
            for p, m in enumerate(self.members):
                if p not in self.failed:
                    rundir.write_json(m.run_path() / rundir.SUMMARY, summaries[p])
        return summaries

    def _start(self, resume_from: Path | None) -> list[RunLogger]:
        """Load the pack checkpoint, or reset every member's envs with its seeds and write checkpoint 0; then
        open each member's logs, cut to the checkpoint."""
        cfg = self.cfg
        if resume_from is not None:
            self.load_state_dict(checkpoint.load(resume_from))
        else:
            for path in [self.pack_dir, *(m.run_path() for m in self.members)]:
                for stale in [*checkpoint.all_checkpoints(path), path / rundir.SUMMARY]:
                    stale.unlink(missing_ok=True)
            self.ppo.collector.reset([s for m in self.members for s in env_seeds(m.seed, cfg.num_envs)])
            self._save(0)
        step = self.ppo.collector.global_step
        loggers = [RunLogger.for_run(m, m.run_path(), purge_step=step + 1) for m in self.members]
        for p, logger in enumerate(loggers):
            logger.metrics.truncate(self.rows[p])
            logger.episodes.truncate(self.episodes_logged[p])
        return loggers

    def _evaluate(self) -> list[list[float]]:
        """Every member's deterministic evaluation (its own eval env seeds and frozen statistics), batched."""
        t0 = time.perf_counter()
        cfg, ppo, P, n = self.cfg, self.ppo, len(self.members), self.cfg.eval_episodes
        envs = make_vector_env(cfg, P * n, evaluation=True, pack=True)
        frozen = ppo.obs_norm.frozen_copy() if ppo.obs_norm is not None else None

        class Members(Policy):
            def __call__(self, obs: np.ndarray) -> np.ndarray:
                x = obs.reshape(P, n, *obs.shape[1:])
                x = frozen(x, update=False) if frozen is not None else x
                action = ppo.agent.act(obs_tensor(x, ppo.device), None, deterministic=True)[keys.ACTION]
                return env_action(action.reshape(P * n, *action.shape[2:]), envs.single_action_space)

        policy = Members()
        try:
            seeds = [s for m in self.members for s in env_seeds(m.seed, n, evaluation=True)]
            returns = first_episode_returns(envs, policy, seeds, cfg.eval_max_steps)
        finally:
            envs.close()
        ppo.phase_time["eval"] += time.perf_counter() - t0
        return [[float(r) for r in returns[p * n:(p + 1) * n]] for p in range(P)]

    def _fail(self, p: int, update: int) -> None:
        """The NaN stop of member p: its one line on stderr and in its ``job.json``; the others go on."""
        m = self.members[p]
        kept = checkpoint.latest(m.run_path())
        line = (f"non-finite loss in update {update} (step {self.ppo.collector.global_step}); training of this "
                f"member stopped, last good checkpoint kept: {kept if kept else 'none written yet'}")
        self.failed[p] = line
        sys.stderr.write(f"error: run {m.run_name()}: {line}\n")
        rundir.write_json(m.run_path() / rundir.JOB_STATE, {**rundir.read_json(m.run_path() / rundir.JOB_STATE),
                                                           "state": "FAILED", "error": line})

    def _save(self, update: int) -> Path:
        """Each live member's solo-format checkpoint, then the pack's (the one a resume loads)."""
        for p, m in enumerate(self.members):
            if p not in self.failed:
                checkpoint.save(m.run_path(), update, member_files.member_checkpoint(self, p))
        return checkpoint.save(self.pack_dir, update, self.state_dict())

    def elapsed_now(self) -> float:
        return self.elapsed + (time.perf_counter() - self._t_start if self._t_start is not None else 0.0)

    def timing(self) -> dict[str, float]:
        """Seconds of this process in each phase (:func:`timing_split`)."""
        return timing_split(self.ppo.phase_time, self.ppo.collector.time_env, self.ppo.collector.time_policy)

    def summary(self, p: int) -> dict[str, Any]:
        c = self.ppo.collector
        return run_summary(self.members[p], updates=self.rows[p], total_steps=c.global_step,
                           returns=c.episodes[p].returns, last_eval=self.last_eval[p], wall_time_s=self.elapsed_now(),
                           checkpoint=checkpoint.latest(self.members[p].run_path()), timing=self.timing())

    def state_dict(self) -> dict[str, Any]:
        c = self.ppo.collector
        return {"format_pack": member_files.PACK_FORMAT, "members": [m.run_name() for m in self.members],
                "config": self.cfg.to_dict(), **self.ppo.state_dict(),
                "collector": {"obs": c.obs, "global_step": c.global_step, "episodes": [vars(e) for e in c.episodes]},
                "envs": checkpoint.snapshot_envs(self.ppo.envs),
                "logger": {"rows": list(self.rows), "episodes_rows": list(self.episodes_logged)},
                "elapsed": self.elapsed_now(), "last_eval": list(self.last_eval), "failed": dict(self.failed)}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        if s.get("members") != [m.run_name() for m in self.members]:
            raise checkpoint.CheckpointError(f"pack checkpoint of members {s.get('members')} does not belong to this "
                                             f"pack ({[m.run_name() for m in self.members]})")
        self.ppo.load_state_dict(s)
        c = self.ppo.collector
        if s["envs"] is not None:
            self.ppo.envs.close()
            self.ppo.envs = c.envs = checkpoint.restore_envs(s["envs"])
            c.obs = s["collector"]["obs"]
        else:     # envs that cannot be snapshotted restart their episodes, seeded apart from every run's
            c.reset([x for m in self.members for x in resume_seeds(m.seed, s["update"], self.cfg.num_envs)])
        c.global_step = s["collector"]["global_step"]
        c.episodes = [EpisodeLog(**e) for e in s["collector"]["episodes"]]
        self.updates_done, self.elapsed = s["update"], s["elapsed"]
        self.rows, self.episodes_logged = list(s["logger"]["rows"]), list(s["logger"]["episodes_rows"])
        self.last_eval, self.failed = list(s["last_eval"]), {int(k): v for k, v in s["failed"].items()}
