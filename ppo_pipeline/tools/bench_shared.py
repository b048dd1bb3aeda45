"""``python -m ppo_pipeline.bench --shared``: runs that share the machine, per thread policy.

For each workload, each candidate policy trains one run alone, then two identical runs started together
(wall clock until both ended), as a user would with ``for s in 0 1; do python recipes/... & done``:

* ``cores``   ``--torch-threads <cores>``: one thread per core, fixed (the default before the run looked)
* ``one``     ``--torch-threads 1``
* ``passive`` ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning), one per core
* ``auto``    the default: the cores left free by other processes, looked at again as the run goes

``pair / 2x alone`` below 1 means two at once beat the same two one after the other. Whole processes,
start-up included.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKLOADS = {
    "cartpole": ("classic_control.py", "CartPole-v1", 40_960),
    "hopper": ("mujoco.py", "Hopper-v5", 20_480),
    "pong": ("atari.py", "ALE/Pong-v5", 8_192),
}
CANDIDATES = ("cores", "one", "passive", "auto")


def command(key: str, candidate: str, run_dir: Path, name: str) -> tuple[list[str], dict[str, str]]:
    recipe, env_id, steps = WORKLOADS[key]
    cores = len(os.sched_getaffinity(0))
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / recipe),
        "--env-id",
        env_id,
        "--total-steps",
        str(steps),
        "--eval-episodes",
        "0",
        "--no-progress",
        "--no-tensorboard",
        "--run-dir",
        str(run_dir),
        "--name",
        name,
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    if candidate in ("cores", "passive"):
        cmd += ["--torch-threads", str(cores)]
    elif candidate == "one":
        cmd += ["--torch-threads", "1"]
    if candidate == "passive":
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return cmd, env


def timed(commands: list[tuple[list[str], dict[str, str]]]) -> float:
    """Start every command at once; seconds until the last one ended."""
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(c, env=e, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c, e in commands
    ]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"error: a --shared run failed: {err.strip()[-400:]}")
    return time.perf_counter() - t0


def run(keys: list[str], candidates: tuple[str, ...] = CANDIDATES) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="ppo-bench-shared-") as tmp:
        for key in keys:
            for cand in candidates:
                d = Path(tmp) / f"{key}-{cand}"
                alone = timed([command(key, cand, d, "alone")])
                pair = timed([command(key, cand, d, "a"), command(key, cand, d, "b")])
                rows.append(
                    {
                        "workload": key,
                        "candidate": cand,
                        "steps": WORKLOADS[key][2],
                        "alone_s": alone,
                        "pair_s": pair,
                        "pair_vs_sequential": pair / (2 * alone),
                    }
                )
                print(
                    f"[bench] {key} {cand}: alone {alone:.1f} s, two at once {pair:.1f} s "
                    f"({pair / (2 * alone):.2f} of one after the other)",
                    flush=True,
                )
    return rows


def print_table(rows: list[dict]) -> None:
    print(f"\n{'workload':9} {'steps':>7} {'threads':8} {'alone s':>8} {'two at once s':>14} {'pair / 2x alone':>16}")
    for r in rows:
        print(
            f"{r['workload']:9} {r['steps']:>7} {r['candidate']:8} {r['alone_s']:>8.1f} {r['pair_s']:>14.1f} "
            f"{r['pair_vs_sequential']:>16.2f}"
        )
