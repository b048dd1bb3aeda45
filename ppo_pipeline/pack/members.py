"""A pack's members as runs: each member's directory gets what a solo run writes.

``config.json``, ``metrics.csv``, ``episodes.csv``, TensorBoard, ``summary.json`` and solo-format
checkpoints (the member's slice of the stacked weights, optimizer moments and statistics), so ``report``,
``play``, ``export`` and ``sweep status`` read a member's directory unchanged. ``member.json`` says which
pack it belongs to: a member resumes with its pack (``python -m ppo_pipeline.sweep resume``), not alone.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..algo.objectives import make_loss, set_beta, set_clip_epsilon
from ..config import Config
from ..run import rundir

MEMBER = "member.json"
PACK = "pack.json"
PACK_FORMAT = "ppo-pipeline/pack/v1"


def write_member_files(cfg: Config, pack_dir: Path, index: int, size: int) -> None:
    """The member's ``config.json`` and ``member.json`` (its pack, relative to the member's directory)."""
    path = cfg.run_path()
    path.mkdir(parents=True, exist_ok=True)
    rundir.write_config(path, cfg)
    rel = os.path.relpath(pack_dir.resolve(), path.resolve())
    rundir.write_json(path / MEMBER, {"pack": rel, "member": index, "members": size})


def pack_of(run_dir: Path) -> Path | None:
    """The pack directory of a member run directory (None for a solo run)."""
    info = rundir.read_json(run_dir / MEMBER)
    return (run_dir / info["pack"]).resolve() if isinstance(info.get("pack"), str) else None


def slice_optimizer(state: dict[str, Any], p: int) -> dict[str, Any]:
    """Member p's slice of a stacked optimizer's ``state_dict`` (Adam: its moments; the step count is shared)."""
    return {"param_groups": state["param_groups"],
            "state": {i: {k: (v[p].clone() if torch.is_tensor(v) and v.dim() > 0 else v) for k, v in s.items()}
                      for i, s in state["state"].items()}}


def slice_stats(state: dict[str, Any] | None, p: int) -> dict[str, Any] | None:
    """Member p's normalization statistics out of the pack's (member axis first)."""
    if state is None:
        return None
    return {k: (v[p].copy() if isinstance(v, np.ndarray) and v.ndim > 0 else v) for k, v in state.items()}


def member_checkpoint(trainer: Any, p: int) -> dict[str, Any]:
    """Member p's checkpoint in the solo format (:mod:`ppo_pipeline.run.training_state`'s keys)."""
    ppo, cfg = trainer.ppo, trainer.members[p]
    agent = ppo.agent.member_agent(p)
    loss = make_loss(cfg, agent)
    set_clip_epsilon(loss, cfg.clip_epsilon * ppo.alpha(max(trainer.updates_done, 1)))
    set_beta(loss, float(ppo.objective.beta[p]))
    state = ppo.state_dict()
    c = ppo.collector
    return {
        "config": cfg.to_dict(), "agent": agent.state_dict(), "loss": loss.state_dict(),
        "optimizer": slice_optimizer(state["optimizer"], p),
        "obs_norm": slice_stats(state["obs_norm"], p), "reward_scaler": slice_stats(state["reward_scaler"], p),
        "rng": {"action": state["generators"]["action"][p], "sampler": state["generators"]["sampler"][p]},
        "collector": {"obs": c.obs[p], "global_step": c.global_step, "episodes": vars(c.episodes[p])},
        "envs": None, "logger": {"metrics_rows": trainer.rows[p], "episodes_rows": trainer.episodes_logged[p]},
        "elapsed": trainer.elapsed_now(), "last_eval": trainer.last_eval[p], "pack": str(trainer.pack_dir),
    }


def write_timing(pack_dir: Path, total: dict[str, float], first_update: dict[str, float]) -> None:
    """The pack's time split into its ``pack.json``: ``timing_s`` (this process's seconds per phase) and
    ``timing_steady_s``, the same without its first update, which compiles (the steady state's split; the pack
    bench prints it)."""
    path = pack_dir / PACK
    rundir.write_json(path, {**rundir.read_json(path), "timing_s": total,
                             "timing_steady_s": {k: round(total[k] - first_update[k], 3) for k in total}})
