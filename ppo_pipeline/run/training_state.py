"""What a checkpoint of a run holds, and putting it back: one format for every member of every run.

A checkpoint is one member's (a solo run is one member): its config, its algorithm state
(:meth:`ppo_pipeline.algo.ppo.PPO.member_state`: parameters, optimizer, loss state (beta), normalization
statistics, step size, its random generators), the process's global RNG states, its share of the collector
(observations, counters, episodes; an LSTM's carried state), its envs where they can be snapshotted
(:func:`ppo_pipeline.run.checkpoint.snapshot_envs`), its log positions and the wall time. A pack writes one per
member into the member's directory, so a member's checkpoint resumes alone as a solo run's does; the pack resumes
from all of them (:func:`pack_resume_points`).

``capture(trainer, p)`` -> dict for :func:`ppo_pipeline.run.checkpoint.save`; ``restore(trainer, states)`` undoes
it for every member.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..algo.collect import EpisodeLog
from ..config import Config
from ..envs.seeds import resume_seeds
from ..pack import members as pack_files
from . import checkpoint, ranked


def _rows(x: Any, start: int, stop: int) -> Any:
    return {k: v[start:stop] for k, v in x.items()} if isinstance(x, dict) else x[start:stop]


def _cat(parts: Sequence[Any]) -> Any:
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def capture(trainer: Any, p: int = 0) -> dict[str, Any]:
    """Member ``p``'s checkpoint of a :class:`ppo_pipeline.run.trainer.Trainer` after ``trainer.updates_done`` updates."""
    c, ppo, m = trainer.collector, trainer.ppo, trainer.members[p]
    E = m.num_envs // trainer.ranks.world  # this process's envs of the member
    lstm = {"state": c.state, "is_init": c.is_init} if getattr(c, "state", None) is not None else None
    return {
        "config": m.to_dict(),
        **ppo.member_state(p),  # agent, optimizer, loss (beta), obs_norm, reward_scaler, step size, generators
        "rng": checkpoint.capture_rng(),
        "collector": {
            "obs": _rows(c.obs, p * E, (p + 1) * E) if c.obs is not None else None,
            "global_step": c.global_step,
            "episodes": vars(c.episodes[p]),
            "lstm": lstm,
        },
        "envs": checkpoint.snapshot_envs(ppo.envs, p * E, (p + 1) * E) if c.exact_resume else None,
        "logger": {"metrics_rows": trainer.rows[p], "episodes_rows": trainer.episodes_logged[p]},
        "elapsed": trainer.elapsed_now(),
        "last_eval": trainer.last_eval[p],
    }


def restore(trainer: Any, states: Sequence[dict[str, Any]]) -> None:
    """Put every member's checkpoint of :func:`capture` (``states[p]``) back into a freshly built trainer of the
    same members (a pack member's checkpoint of an earlier version holds part of this: what it holds). Over W ranks
    each rank takes its rows of the one-process checkpoint (:mod:`.ranked`), whatever W wrote it."""
    ppo, c, ranks = trainer.ppo, trainer.collector, trainer.ranks
    states = [ranked.rows_of(ranks, s) for s in states]
    ppo.load_member_states(states)
    if trainer.pack_dir is not None:  # members the pack marked failed stay stopped
        names = [m.run_name() for m in trainer.members]
        failed = pack_files.read_pack(trainer.pack_dir).get("failed") or {}
        trainer.failed = {names.index(n): line for n, line in failed.items() if n in names}
        ppo.set_alive([p not in trainer.failed for p in range(trainer.P)])
    ref = max(states, key=lambda s: s["update"])  # a live member's (a failed one's last is older)
    checkpoint.restore_rng(ref["rng"])
    update = ref["update"]
    snapshots = [x for s in states for x in ranked.envs_of(ranks, s.get("envs"))]
    # (a Bullet run's checkpoints of earlier versions hold pickles of unconnected envs: never restored)
    if all(s is not None for s in snapshots) and c.exact_resume and checkpoint.snapshottable(ppo.envs):
        ppo.envs.close()
        ppo.envs = c.envs = checkpoint.restore_envs(snapshots, ranks.envs if ranks.many else None, len(states))
        c.obs = _cat([s["collector"]["obs"] for s in states]) if len(states) > 1 else states[0]["collector"]["obs"]
        lstm = states[0]["collector"].get("lstm") or {}
        if lstm.get("state") is not None:
            c.state, c.is_init = lstm["state"], lstm["is_init"]
    else:  # envs that cannot be snapshotted restart their episodes, seeded apart from every run's
        share = ranks.envs if ranks.many else slice(None)
        c.reset(
            [x for m in trainer.members for x in resume_seeds(m.seed, update, m.num_envs)[share.start : share.stop]]
        )
    c.global_step = ref["collector"]["global_step"]
    c.episodes = [
        merge.restart(EpisodeLog(**s["collector"]["episodes"])) for merge, s in zip(trainer.episode_merges, states)
    ]
    trainer.updates_done = update
    trainer.elapsed = ref["elapsed"]
    trainer.last_eval = [s.get("last_eval") for s in states]
    trainer.rows = [s["logger"]["metrics_rows"] for s in states]
    trainer.episodes_logged = [s["logger"]["episodes_rows"] for s in states]


def pack_resume_points(pack_dir: Path, members: Sequence[Config]) -> tuple[list[Path], dict[str, str]] | None:
    """The checkpoint of each member a pack resumes from (the update ``pack.json`` marks; a failed member's last,
    older one) and the failed members' lines; None when the pack never marked one."""
    info = pack_files.read_pack(pack_dir)
    update = info.get("checkpoint")
    if update is None:
        return None
    failed = dict(info.get("failed") or {})
    paths = []
    for m in members:
        own = checkpoint.path_for(m.run_path(), update)
        if m.run_name() in failed or not own.exists():
            latest = checkpoint.latest(m.run_path())
            if latest is None:
                return None
            own = latest
        paths.append(own)
    return paths, failed
