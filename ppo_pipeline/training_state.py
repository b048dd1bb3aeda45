"""What a checkpoint of a run holds, and putting it back: parameters, optimizer, loss state (beta),
normalization statistics, RNG states, the collector's observation and counters, the env state where it
can be snapshotted (:func:`ppo_pipeline.checkpoint.snapshot_envs`), the log positions and the wall time.

``capture(trainer)`` -> dict for :func:`ppo_pipeline.checkpoint.save`; ``restore(trainer, state)`` undoes it.
"""

from __future__ import annotations

from typing import Any

from . import checkpoint
from .collect import EpisodeLog
from .config import env_seeds


def capture(trainer: Any) -> dict[str, Any]:
    """The checkpoint of a :class:`ppo_pipeline.trainer.Trainer` after ``trainer.updates_done`` updates."""
    c = trainer.collector
    return {
        "config": trainer.cfg.to_dict(),
        "agent": trainer.agent.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "loss": trainer.loss.state_dict(),
        "obs_norm": trainer.obs_norm.state_dict() if trainer.obs_norm else None,
        "reward_scaler": trainer.reward_scaler.state_dict() if trainer.reward_scaler else None,
        "rng": checkpoint.capture_rng(trainer.generator),
        "collector": {"obs": c.obs, "global_step": c.global_step, "episodes": vars(c.episodes)},
        "envs": checkpoint.snapshot_envs(trainer.envs) if c.exact_resume else None,
        "logger": {"metrics_rows": trainer.updates_done, "episodes_rows": trainer.episodes_logged},
        "elapsed": trainer.elapsed_now(),
        "last_eval": trainer.last_eval,
    }


def restore(trainer: Any, s: dict[str, Any]) -> None:
    """Put a checkpoint of :func:`capture` back into a freshly built trainer of the same config."""
    trainer.agent.load_state_dict(s["agent"])
    trainer.optimizer.load_state_dict(s["optimizer"])
    trainer.loss.load_state_dict(s["loss"])
    if trainer.obs_norm is not None:
        trainer.obs_norm.load_state_dict(s["obs_norm"])
    if trainer.reward_scaler is not None:
        trainer.reward_scaler.load_state_dict(s["reward_scaler"])
    checkpoint.restore_rng(s["rng"], trainer.generator)
    c = trainer.collector
    if s["envs"] is not None:
        trainer.envs.close()
        trainer.envs = c.envs = checkpoint.restore_envs(s["envs"])
        c.obs = s["collector"]["obs"]
    else:  # subprocess envs cannot be snapshotted: restart their episodes with fresh derived seeds
        c.reset([x + s["update"] * 1000 for x in env_seeds(trainer.cfg.seed, trainer.cfg.num_envs)])
    c.global_step = s["collector"]["global_step"]
    c.episodes = EpisodeLog(**s["collector"]["episodes"])
    trainer.updates_done = s["update"]
    trainer.elapsed = s["elapsed"]
    trainer.last_eval = s.get("last_eval")
    trainer.episodes_logged = s["logger"]["episodes_rows"]
