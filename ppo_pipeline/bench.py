"""Speed benchmark: agent steps/s with training, the split by phase, and the raw-env ceiling.

    python -m ppo_pipeline.bench                      # CartPole, Hopper, Pong at the peers' budgets
    python -m ppo_pipeline.bench --envs cartpole --steps 20480

Each workload matches the peer run it is compared with (same actors, horizon, epochs and minibatches
as CleanRL's defaults in ``../shared/reference/anchors.md``), so the ratio compares equal work:

* CartPole-v1: 4 envs x 128, 4 epochs x 4 minibatches, 100k steps (CleanRL ``ppo.py``)
* Hopper-v5:   1 env x 2048, 10 epochs x 32 minibatches, 200k steps (CleanRL ``ppo_continuous_action.py``
  = the paper's Table 3)
* Pong:        8 envs x 128, 4 epochs x 4 minibatches, 100k steps (CleanRL ``ppo_atari.py``; the paper's
  Table 5 uses 3 epochs, which would be faster still)

Agent steps/s is wall clock from process start, as the anchors were measured: every workload runs in a
fresh ``python`` process (imports, env start-up and the final checkpoint included, evaluation off as
in the peers' scripts). The split comes from the run's ``summary.json`` (``timing_s``). The raw rate
steps the same vector env stack with uniformly random actions and no network: the ceiling.
Figures print as a table; nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# Measured on the 2-core reference machine with each peer's own defaults (anchors.md), steps/s.
CLEANRL_SPS = {"cartpole": 3034, "hopper": 731, "pong": 216}


@dataclass
class Workload:
    key: str
    recipe: str
    args: list[str]
    steps: int


def workloads(steps: dict[str, int]) -> dict[str, Workload]:
    def budget(key: str, default: int, batch: int) -> int:
        n = steps.get(key, default)
        return max(batch, n // batch * batch)

    return {
        "cartpole": Workload("cartpole", "classic_control.py",
                             ["--env-id", "CartPole-v1", "--num-envs", "4", "--num-steps", "128", "--epochs", "4",
                              "--minibatch-size", "128", "--lr", "2.5e-4", "--gamma", "0.99", "--gae-lambda", "0.95",
                              "--entropy-coef", "0.01", "--clip-value", "0.2"],
                             budget("cartpole", 100_352, 512)),
        "hopper": Workload("hopper", "mujoco.py", ["--env-id", "Hopper-v5"], budget("hopper", 200_704, 2048)),
        "pong": Workload("pong", "atari.py", ["--env-id", "ALE/Pong-v5", "--epochs", "4"],
                         budget("pong", 100_352, 1024)),
    }


def raw_env_sps(key: str, seconds: float = 5.0) -> float:
    """Vector-env steps/s x num_envs with random actions, same stack and batching as training."""
    from . import config
    from .envs import make_vector_env
    from .evaluation import random_policy, rollout

    cfg = {"cartpole": config.classic(num_envs=4), "hopper": config.mujoco(), "pong": config.atari()}[key].resolved()
    envs = make_vector_env(cfg, cfg.num_envs)
    steps = rollout(envs, random_policy(envs, 0), list(range(cfg.num_envs)))
    next(steps)                      # reset and a first step: start-up is not the rate
    n, t0 = 0, time.perf_counter()
    for i, _ in enumerate(steps, start=1):
        if i % 64 == 0 and time.perf_counter() - t0 >= seconds:
            n = i * cfg.num_envs
            break
    rate = n / (time.perf_counter() - t0)
    envs.close()
    return rate


def collector_comparison(steps: int = 8192) -> dict[str, float]:
    """Collection alone (no training), same 64-64 policy on Hopper-v5: torchrl ``Collector`` over
    ``GymEnv`` against :class:`ppo_pipeline.collect.Collector` over a gymnasium vector env.

    The measurement behind the collector choice documented in :mod:`ppo_pipeline.collect`.
    """
    import torch
    from torchrl.collectors import Collector as TorchRLCollector
    from torchrl.envs import DoubleToFloat, TransformedEnv
    from torchrl.envs.libs.gym import GymEnv

    from . import config
    from .collect import Collector
    from .config import env_seeds
    from .env_ids import resolve_env_id
    from .envs import make_vector_env
    from .models import Agent

    cfg = config.mujoco(normalize_obs=False, scale_reward=False)
    cfg.env_id = resolve_env_id(cfg.env_id)
    venv = make_vector_env(cfg, 1)
    agent = Agent(venv.single_observation_space, venv.single_action_space, cfg)
    out = {}
    env = TransformedEnv(GymEnv("Hopper-v5"), DoubleToFloat())  # MuJoCo observes float64
    trl = TorchRLCollector(env, agent.actor, frames_per_batch=2048, total_frames=steps)
    t0 = time.perf_counter()
    n = sum(batch.numel() for batch in trl)
    out["torchrl Collector + GymEnv"] = n / (time.perf_counter() - t0)
    trl.shutdown()
    ours = Collector(venv, agent, 2048, torch.device("cpu"))
    ours.reset(env_seeds(0, 1))
    t0 = time.perf_counter()
    n = sum(ours.collect().numel() for _ in range(max(1, steps // 2048)))
    out["ppo_pipeline Collector + gymnasium vector env"] = n / (time.perf_counter() - t0)
    venv.close()
    return out


def run_workload(w: Workload, root: Path, out: Path, threads: int) -> dict:
    run_dir = out / w.key
    cmd = [sys.executable, str(root / "recipes" / w.recipe), *w.args, "--total-steps", str(w.steps),
           "--eval-episodes", "0", "--no-tensorboard", "--no-progress", "--checkpoint-every", "1000000",
           "--run-dir", str(run_dir), "--name", "bench", "--torch-threads", str(threads)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    summary = json.loads((run_dir / "bench" / "summary.json").read_text())
    return {"wall_s": wall, "sps": w.steps / wall, "timing": summary["timing_s"],
            "last100": summary["last100_return_mean"]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ppo_pipeline.bench", description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--envs", default="cartpole,hopper,pong", help="comma list of cartpole, hopper, pong")
    p.add_argument("--steps", default="", help="budget overrides, e.g. hopper=20480,pong=10240")
    p.add_argument("--threads", type=int, default=0, help="torch threads for training (0 = one per core)")
    p.add_argument("--raw-seconds", type=float, default=5.0, help="seconds of random-action env stepping")
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    p.add_argument("--collectors", action="store_true",
                   help="only compare torchrl's Collector with ours on Hopper-v5 (collection alone)")
    args = p.parse_args(argv)
    keys = [k.strip() for k in args.envs.split(",") if k.strip()]
    try:
        overrides = {k: int(v) for k, v in (kv.split("=") for kv in args.steps.split(",") if kv)}
    except ValueError:
        p.error(f"--steps {args.steps!r}: expected key=int pairs like hopper=20480")
    table = workloads(overrides)
    bad = [k for k in keys if k not in table]
    if bad:
        p.error(f"--envs: unknown {', '.join(bad)}; allowed: {', '.join(table)}")
    if args.collectors:
        for name, sps in collector_comparison().items():
            print(f"{name:48} {sps:8.0f} steps/s (Hopper-v5, collection only)")
        return 0
    root = Path(__file__).resolve().parents[1]
    results = {}
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as tmp:
        for k in keys:
            w = table[k]
            r = run_workload(w, root, Path(tmp), args.threads)
            r["raw_env_sps"] = raw_env_sps(k, args.raw_seconds)
            r["steps"] = w.steps
            results[k] = r
            _print_row(k, r)
    print()
    print(f"{'env':10} {'steps':>8} {'SPS':>7} {'CleanRL':>8} {'ratio':>6} {'raw env':>8} | "
          f"{'env%':>5} {'policy%':>7} {'other%':>6} {'gae%':>5} {'update%':>7} {'startup%':>8}")
    for k, r in results.items():
        t, wall = r["timing"], r["wall_s"]
        inside = sum(t.values())
        pct = {n: 100 * t[n] / wall for n in t}
        print(f"{k:10} {r['steps']:>8} {r['sps']:>7.0f} {CLEANRL_SPS[k]:>8} {r['sps'] / CLEANRL_SPS[k]:>6.2f} "
              f"{r['raw_env_sps']:>8.0f} | {pct['env']:>5.1f} {pct['policy']:>7.1f} {pct['collect_other']:>6.1f} "
              f"{pct['gae']:>5.1f} {pct['update']:>7.1f} {100 * (wall - inside) / wall:>8.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _print_row(k: str, r: dict) -> None:
    print(f"[bench] {k}: {r['steps']} steps in {r['wall_s']:.1f} s = {r['sps']:.0f} steps/s "
          f"(raw env {r['raw_env_sps']:.0f}/s; last-100 return {r['last100']})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
