"""A run over W ranks, the run's side (the algorithm's is :mod:`ppo_pipeline.algo.ranks`): joining the process
group, agreeing on a stop, every rank's episodes and checkpoint parts brought to rank 0, which alone writes the
run directory.

A rank is a process with torchrun's variables set (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``):
``--nproc-per-node N`` starts N of them here (:func:`ppo_pipeline.launch.run`), and ``torchrun --nproc-per-node N
recipes/<recipe>.py --nproc-per-node N ...`` starts them the same way.

**One checkpoint, the one-process format.** A checkpoint of a run over W ranks is the checkpoint the one-process run
would write: rank 0 gathers each rank's rows (the observations, the reward scaler's running returns, the envs'
snapshots) and concatenates them in env order; its episodes are every rank's, merged as one process logs them
(by step, then env). So a run resumes with any W (or as one process), each rank taking its rows.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np
import torch

from ..algo.collect import EpisodeLog
from ..algo.ranks import Ranks
from ..config import Config
from ..errors import ConfigError

RANK_TIMEOUT_S = 300  # a collective that waits longer (a rank hung or gone) fails the run with one line


def in_rank() -> bool:
    """This process is one rank of a run over several (torchrun's variables are set)."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_of_process() -> int:
    return int(os.environ.get("RANK", "0"))


def join(cfg: Config) -> Ranks:
    """This process's place in the run: the one process, or (torchrun's variables set) rank ``RANK`` of
    ``WORLD_SIZE``, after joining the process group (gloo on CPU, nccl on CUDA: ``cfg.dist_backend``)."""
    if not in_rank():
        return Ranks(0, 1, cfg.num_envs, cfg.device)
    import torch.distributed as dist

    world = int(os.environ["WORLD_SIZE"])
    if world != cfg.nproc_per_node * cfg.nodes:
        raise ConfigError(
            f"WORLD_SIZE={world} but nproc_per_node={cfg.nproc_per_node} x nodes={cfg.nodes}: "
            f"give --nproc-per-node and --nodes that multiply to {world}"
        )
    backend = cfg.dist_backend if cfg.dist_backend != "auto" else ("nccl" if cfg.device.startswith("cuda") else "gloo")
    if not dist.is_initialized():
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=RANK_TIMEOUT_S))
    return Ranks.of_process_group(cfg.num_envs, cfg.device, cfg.rank_stats)


def torch_threads(cfg: Config, ranks: Ranks) -> int:
    """torch threads of this process: ``cfg.torch_threads``; 0 (one per free core) for the one process, and for a
    rank its share of the node's cores (cores / ranks on the node), so that the ranks do not oversubscribe them."""
    if cfg.torch_threads or not ranks.many:
        return cfg.torch_threads
    from ..threads import cores

    local = int(os.environ.get("LOCAL_WORLD_SIZE", cfg.nproc_per_node))
    return max(1, cores() // max(local, 1))


def leave() -> None:
    if in_rank():
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def agree(ranks: Ranks, *flags: bool) -> list[bool]:
    """Each flag true on any rank, on every rank (one all-reduce): a signal or a hook's stop seen by one rank stops
    all at the same update boundary."""
    if not ranks.many:
        return list(flags)
    x = ranks.sum_(torch.tensor([float(f) for f in flags]))
    return [bool(v > 0) for v in x]


class EpisodeMerge:
    """Every rank's finished episodes in rank 0's log, in the order one process logs them (by step; within a step
    by env: rank, then the rank's env). Call :meth:`merge` on every rank after each update."""

    def __init__(self, ranks: Ranks):
        self.ranks, self.sent = ranks, 0

    def merge(self, log: EpisodeLog) -> None:
        if not self.ranks.many:
            return
        new = list(zip(log.steps[self.sent :], log.returns[self.sent :], log.lengths[self.sent :]))
        parts = self.ranks.gather_objects(new)
        if self.ranks.lead:
            rows = sorted(((s, r, ret, n) for r, part in enumerate(parts) for s, ret, n in part), key=lambda x: x[:2])
            del log.steps[self.sent :], log.returns[self.sent :], log.lengths[self.sent :]
            for s, _, ret, n in rows:
                log.add(s, ret, n)
        self.sent = len(log.steps)

    def restart(self, log: EpisodeLog) -> EpisodeLog:
        """After a resume: rank 0 keeps the checkpoint's log, the others start an empty one."""
        if self.ranks.lead or not self.ranks.many:
            self.sent = len(log.steps)
            return log
        self.sent = 0
        return EpisodeLog()


def _cat(parts: list[Any]) -> Any:
    if parts[0] is None:
        return None
    if isinstance(parts[0], dict):
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return np.concatenate(parts)


def gather_state(ranks: Ranks, state: dict[str, Any]) -> dict[str, Any]:
    """A rank's checkpoint state -> the one-process run's (on rank 0; other ranks get theirs back unchanged): its
    rows' observations, reward returns and env snapshots concatenated over the ranks in env order."""
    if not ranks.many:
        return state
    c, scaler = state["collector"], state.get("reward_scaler")
    mine = {"obs": c["obs"], "ret": scaler["ret"] if scaler else None, "envs": state.get("envs")}
    parts = ranks.gather_objects(mine)
    if not ranks.lead:
        return state
    out = {**state, "collector": {**c, "obs": _cat([p["obs"] for p in parts])}}
    if scaler:
        out["reward_scaler"] = {**scaler, "ret": np.concatenate([p["ret"] for p in parts])}
    envs = [p["envs"] for p in parts]
    out["envs"] = {"ranks": envs} if all(e is not None for e in envs) else None
    return out


def rows_of(ranks: Ranks, state: dict[str, Any]) -> dict[str, Any]:
    """The one-process checkpoint state -> this rank's (its rows of the observations and reward returns; its envs
    stay in ``envs`` whole, :func:`envs_of` takes them)."""
    if not ranks.many:
        return state
    share = ranks.envs
    c, scaler = state["collector"], state.get("reward_scaler")
    obs = c["obs"]
    if obs is not None:
        obs = (
            {k: v[share.start : share.stop] for k, v in obs.items()}
            if isinstance(obs, dict)
            else obs[share.start : share.stop]
        )
    out = {**state, "collector": {**c, "obs": obs}}
    if scaler:
        out["reward_scaler"] = {**scaler, "ret": scaler["ret"][share.start : share.stop]}
    return out


def envs_of(ranks: Ranks, snapshot: Any) -> list[Any]:
    """The env snapshots to restore on this rank: the checkpoint's, one per rank that wrote it (or the one of a
    one-process run); :func:`ppo_pipeline.run.training_state.restore` keeps this rank's rows of them."""
    if isinstance(snapshot, dict) and "ranks" in snapshot:
        return list(snapshot["ranks"])
    return [snapshot]


def lost_a_rank(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed because another rank of the run died or hung: torch's
    ``DistError`` (nccl's, a timeout) or gloo's ``RuntimeError`` ("Connection reset by peer", its timeout)."""
    import torch.distributed as dist

    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    return isinstance(e, RuntimeError) and any(s in str(e) for s in ("gloo", "NCCL", "by peer"))


# --- starting the ranks here ----------------------------------------------------------------------------------
HINT_ENV = "PPO_PIPELINE_RESUME_HINT"  # the command that continues the run, for rank 0's lines
RANK_GRACE_S = 15.0  # after a rank fails, how long the others get to fail on their own before they are killed


def spawn_local(cfg: Config, resume_from: Any = None, hint: str = "", unit: dict[str, Any] | None = None) -> int:
    """Run ``cfg`` as ``cfg.nproc_per_node`` ranks on this machine (processes of ``python -m ppo_pipeline.launch
    --rank CONFIG [CHECKPOINT]`` with torchrun's variables) and wait for them: 0 when every rank finished, 130 when
    a signal stopped them (each forwarded once to every rank: they stop at the same update, one checkpoint), else
    one ``error:`` line naming the first rank that failed, the others stopped within ``RANK_GRACE_S``.
    ``unit``: a sweep's unit instead (a run or a pack, :func:`ppo_pipeline.sweeps.jobs.run_unit`'s spec, resumed
    from its own checkpoint; ``--rank-unit SPEC``), ``cfg`` its first member."""
    import json
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    world = cfg.nproc_per_node
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="ppo-ranks-", delete=False) as f:
        json.dump(cfg.to_dict() if unit is None else unit, f)
    flag = "--rank" if unit is None else "--rank-unit"
    cmd = [sys.executable, "-m", "ppo_pipeline.launch", flag, f.name] + ([str(resume_from)] if resume_from else [])
    procs = []
    for r in range(world):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world), HINT_ENV: hint}
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        out = None if r == 0 else subprocess.DEVNULL  # rank 0 speaks for the run
        procs.append(subprocess.Popen(cmd, env=env, stdout=out, start_new_session=True))

    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)}
    failed: tuple[int, int] | None = None
    deadline = None
    try:
        while any(p.poll() is None for p in procs):
            for r, p in enumerate(procs):
                if failed is None and p.poll() not in (None, 0, 130):
                    failed, deadline = (r, p.returncode), time.monotonic() + RANK_GRACE_S
            if deadline is not None and time.monotonic() > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
            time.sleep(0.1)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        os.unlink(f.name)
    codes = [p.returncode for p in procs]
    if failed is None and any(c not in (0, 130) for c in codes):
        failed = next((r, c) for r, c in enumerate(codes) if c not in (0, 130))
    if failed is not None:
        r, code = failed
        sys.stderr.write(
            f"error: rank {r} of {world} exited with code {code}; the other ranks were stopped; "
            f"the newest checkpoint stays valid: continue with {hint}\n"
        )
        return 1
    return 130 if 130 in codes else 0
