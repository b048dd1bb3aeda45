"""``python -m ppo_pipeline.bench --ranks 1,2``: one run as 1 process, then as W ranks (``--nproc-per-node W``).

Per workload the same run (config, seed, agent steps) is trained once per W, each a fresh command as a user starts
it, nothing else running; printed: total agent steps/s (wall clock, process start to exit, start-up included) and
over the steady state (from the end of the first update to the end of the last: ``metrics.csv``'s ``time_s``), the
steady state's speed-up over one process, and the share of rank 0's training time spent in collectives
(all-reduces and gathers, the waits for the other ranks included: :attr:`ppo_pipeline.algo.ranks.Ranks.seconds`).

* ``hopper``: Hopper-v5, Table 3's preset with 8 gymnasium envs (in-process, one core steps them all)
* ``humanoid``: HumanoidBulletEnv-v0, Table 4's preset (32 actors, Sec. 6.3) -- needs the ``bullet`` extra
* ``pong``: Pong (envpool), Table 5's preset with 8 envs: the Nature CNN's update

Nothing here asserts a speed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# key: (recipe, options, default agent steps)
WORKLOADS = {
    "hopper": (
        "mujoco.py",
        ["--env-id", "Hopper-v5", "--num-envs", "8", "--env-backend", "gymnasium", "--vector-env", "sync"],
        8 * 2048 * 4,
    ),
    "humanoid": ("humanoid.py", ["--env-id", "HumanoidBulletEnv-v0"], 32 * 512 * 4),
    "pong": ("atari.py", ["--env-id", "ALE/Pong-v5", "--num-envs", "8", "--env-backend", "envpool"], 8 * 128 * 6),
}
COMMON = ["--eval-episodes", "0", "--no-progress", "--no-tensorboard", "--checkpoint-every", "1000"]


def run_once(key: str, world: int, steps: int, tmp: Path, extra: Sequence[str] = ()) -> dict:
    recipe, options, _ = WORKLOADS[key]
    run_dir = tmp / f"{key}-w{world}-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / recipe),
        *options,
        *COMMON,
        "--total-steps",
        str(steps),
        "--run-dir",
        str(run_dir),
        "--name",
        "bench",
        "--nproc-per-node",
        str(world),
        *extra,
    ]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"error: the {key} run with {world} rank(s) failed: {p.stderr.strip()[-400:]}")
    summary = json.loads((run_dir / "bench" / "summary.json").read_text())
    from .bench_pack import steady_rate

    steps_steady, seconds = steady_rate(run_dir / "bench")
    timing = summary["timing_s"]
    busy = sum(v for k, v in timing.items() if k != "collectives")
    return {
        "wall_s": round(wall, 2),
        "sps": steps / wall,
        "steady_sps": steps_steady / max(seconds, 1e-9),
        "steps": summary["total_steps"],
        "timing": timing,
        "collectives_share": timing.get("collectives", 0.0) / busy if busy else 0.0,
    }


def run(keys: list[str], worlds: list[int], steps: dict[str, int], extra: Sequence[str] = ()) -> dict:
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="ppo-bench-ranks-") as tmp:
        for key in keys:
            n = steps.get(key, WORKLOADS[key][2])
            results[key] = {str(w): run_once(key, w, n, Path(tmp), extra) for w in worlds}
    return results


def print_table(results: dict) -> None:
    print(f"{'workload':10} {'ranks':>5} {'wall steps/s':>12} {'steady steps/s':>14} {'vs 1':>6} {'collectives':>12}")
    for key, rows in results.items():
        base = rows.get("1", {}).get("steady_sps")
        for w, r in rows.items():
            ratio = f"{r['steady_sps'] / base:.2f}x" if base else "-"
            print(
                f"{key:10} {w:>5} {r['sps']:12.0f} {r['steady_sps']:14.0f} {ratio:>6} {100 * r['collectives_share']:11.1f}%"
            )


# --- the projection for a cluster, from measured sizes ------------------------------------------------------
LINKS_GBIT = (10, 100)
WORLDS = (8, 64, 512)
HOP_LATENCY_S = 20e-6  # per ring step over TCP (gloo); nccl over InfiniBand is lower: this errs on the slow side


def allreduce_seconds(nbytes: int, world: int, gbit: float) -> float:
    """An all-reduce of ``nbytes`` over ``world`` ranks at ``gbit``: the faster of a ring (2 (W - 1) steps of
    nbytes / W) and a tree (2 log2 W steps of latency, the bytes pipelined: 2 nbytes on the wire), as nccl picks."""
    wire = 2 * nbytes * (world - 1) / world / (gbit * 1e9 / 8)
    ring = 2 * (world - 1) * HOP_LATENCY_S + wire
    tree = 2 * math.log2(world) * HOP_LATENCY_S + 2 * nbytes / (gbit * 1e9 / 8)
    return min(ring, tree)


def model_sizes() -> dict[str, dict[str, int]]:
    """Per preset network: trained parameters (float32 gradients all-reduced per minibatch) and minibatch steps
    per update, measured on the networks the presets build."""
    import gymnasium as gym
    import numpy as np

    from .. import config
    from ..algo.policy import Agent

    cases = {
        "Table 3 MLP (Hopper-v5)": (config.mujoco(env_id="Hopper-v5"), (11,), gym.spaces.Box(-1, 1, (3,))),
        "Table 4 MLP (HumanoidBullet)": (config.roboschool(), (44,), gym.spaces.Box(-1, 1, (17,))),
        "Nature CNN (Atari, Table 5)": (config.atari(), (4, 84, 84), gym.spaces.Discrete(6)),
    }
    out = {}
    for name, (cfg, shape, act) in cases.items():
        obs = gym.spaces.Box(0, 255, shape, np.uint8) if len(shape) == 3 else gym.spaces.Box(-1, 1, shape)
        params = sum(p.numel() for p in Agent(obs, act, cfg).parameters() if p.requires_grad)
        steps = cfg.num_envs * cfg.num_steps // cfg.minibatch_size * cfg.epochs
        out[name] = {"params": params, "bytes": 4 * (params + 8), "minibatch_steps": steps}  # + the loss terms
    return out


def print_projection() -> None:
    print(f"{'network':30} {'params':>9} {'MB/all-reduce':>13} {'steps/upd':>9}  seconds of all-reduce per update")
    sizes = model_sizes()
    head = "  ".join(f"{w:>4} ranks {g:>3} Gb/s" for g in LINKS_GBIT for w in WORLDS)
    print(" " * 66 + head)
    for name, s in sizes.items():
        cells = "  ".join(
            f"{s['minibatch_steps'] * allreduce_seconds(s['bytes'], w, g):>19.3f}" for g in LINKS_GBIT for w in WORLDS
        )
        print(f"{name:30} {s['params']:9d} {s['bytes'] / 1e6:13.3f} {s['minibatch_steps']:9d}  {cells}")
