"""What a checkpoint of a run holds, and putting it back: parameters, optimizer, loss state (beta),
normalization statistics, RNG states, the collector's observation and counters, the env state where it
can be snapshotted (:func:`ppo_pipeline.run.checkpoint.snapshot_envs`), the log positions and the wall time.

``capture(trainer)`` (a :class:`ppo_pipeline.run.trainer.Trainer`) -> dict for :func:`ppo_pipeline.run.checkpoint.save`; ``restore(trainer, state)`` undoes it.
"""

from __future__ import annotations

from typing import Any

from ..algo.collect import EpisodeLog
from ..envs.seeds import resume_seeds
from . import checkpoint


def capture(trainer: Any) -> dict[str, Any]:
    """The checkpoint of a :class:`ppo_pipeline.run.trainer.Trainer` after ``trainer.updates_done`` updates."""
    c = trainer.collector
    return {
        "config": trainer.cfg.to_dict(),
        **trainer.ppo.state_dict(),          # agent, optimizer, loss (beta), obs_norm, reward_scaler
        "rng": checkpoint.capture_rng(trainer.ppo.generator),
        "collector": {"obs": c.obs, "global_step": c.global_step, "episodes": vars(c.episodes),
                      "lstm": {"state": c.state, "is_init": c.is_init}},       # --policy lstm: the carried state
        "envs": checkpoint.snapshot_envs(trainer.ppo.envs) if c.exact_resume else None,
        "logger": {"metrics_rows": trainer.updates_done, "episodes_rows": trainer.episodes_logged},
        "elapsed": trainer.elapsed_now(),
        "last_eval": trainer.last_eval,
    }


def restore(trainer: Any, s: dict[str, Any]) -> None:
    """Put a checkpoint of :func:`capture` back into a freshly built trainer of the same config."""
    trainer.ppo.load_state_dict(s)
    checkpoint.restore_rng(s["rng"], trainer.ppo.generator)
    c = trainer.collector
    if s["envs"] is not None:
        trainer.ppo.envs.close()
        trainer.ppo.envs = c.envs = checkpoint.restore_envs(s["envs"])
        c.obs = s["collector"]["obs"]
        lstm = s["collector"].get("lstm") or {}
        if lstm.get("state") is not None:
            c.state, c.is_init = lstm["state"], lstm["is_init"]
    else:  # subprocess envs cannot be snapshotted: restart their episodes, seeded apart from every run's
        c.reset(resume_seeds(trainer.cfg.seed, s["update"], trainer.cfg.num_envs))
    c.global_step = s["collector"]["global_step"]
    c.episodes = EpisodeLog(**s["collector"]["episodes"])
    trainer.updates_done = s["update"]
    trainer.elapsed = s["elapsed"]
    trainer.last_eval = s.get("last_eval")
    trainer.episodes_logged = s["logger"]["episodes_rows"]
