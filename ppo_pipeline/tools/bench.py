"""Speed benchmark: agent steps/s with training, beside the peer run in the same session.

    python -m ppo_pipeline.bench                                  # ours only: CartPole, Hopper, Pong
    python -m ppo_pipeline.bench --peer-dir ../shared/peers/cleanrl --peer-python /tmp/peer-venv/bin/python \\
        --repeat 3                                                # CleanRL beside us, ratio of medians
    python -m ppo_pipeline.bench --peer sb3 --peer-python /tmp/sb3-venv/bin/python --envs cartpole,hopper
                                                                  # Stable-Baselines3 beside us (pip install)
    python -m ppo_pipeline.bench --envs hopper --steps hopper=20480   # a shorter workload
    python -m ppo_pipeline.bench --raw                            # raw env steps/s per backend
    python -m ppo_pipeline.bench --collectors                     # collection alone: ours vs torchrl's
    python -m ppo_pipeline.bench --paths --envs cartpole,hopper,pong,cheetah   # a row per env backend x collector
    python -m ppo_pipeline.bench --pack 8,33 --envs hopper,cartpole  # P runs one after the other vs one pack
    python -m ppo_pipeline.bench --shared                         # two runs at once, per thread policy
    python -m ppo_pipeline.bench --ranks 1,2                      # one run as 1 process, then as 2 ranks

Each workload is CleanRL's default for that env, and ours runs the same work (actors, horizon, epochs,
minibatches, and exactly the agent steps CleanRL trains: it rounds its budget down to whole batches):

* CartPole-v1: 4 envs x 128, 4 epochs x 4 minibatches, 99,840 steps (``cleanrl/ppo.py --total-timesteps 100000``)
* Hopper-v5:   1 env x 2048, 10 epochs x 32 minibatches, 198,656 steps (``ppo_continuous_action.py``; = Table 3)
* Pong:        8 envs x 128, 4 epochs x 4 minibatches, 99,328 agent steps (``ppo_atari.py``; Table 5 has 3 epochs)
* cheetah:     DMControl cheetah-run through torchrl, Table 3's preset (no peer script: ``--paths`` only)
* pong-lstm:   Pong with ``--policy lstm`` (``ppo_atari_lstm.py``: the same 8 x 128 batch, 4 epochs x 4 minibatches
               of 2 whole env trajectories, an LSTM of 128 after the Nature CNN)

``--paths`` trains ours once per env backend x collector the workload can take (gymnasium / envpool /
torchrl envs; the lean or torchrl's collector, and torchrl's MultiSyncCollector with 2 workers where the
preset has no running normalization), so the cost of the TorchRL path is a same-run number.

Steps/s is wall clock from process start to exit, as a user sees it: imports, env start-up, compilation
and our checkpoints included, evaluation off (the peers do not evaluate). With ``--peer-dir`` each
repeat runs the peer, then ours, one after the other, never at the same time; the table shows the
median of the repeats and the ratio of the medians. No peer figure is stored anywhere: a ratio is only
ever of two runs of the same session. Nothing here asserts a speed.

``--peer sb3`` runs Stable-Baselines3's PPO instead (``peer_sb3.py``, by ``--peer-python``: a venv with
``stable-baselines3``), on CartPole and Hopper with our side's hyperparameters rather than CleanRL's defaults
(the same agent steps, envs x horizon, epochs, minibatches, step size and schedule, coefficients, network).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..cli import OneLineParser

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Workload:
    key: str
    env_id: str
    recipe: str
    args: list[str]
    steps: int  # agent steps both sides train
    peer_script: str
    peer_args: list[str] = field(default_factory=list)
    batch: int = 1


WORKLOADS = {
    "cartpole": Workload(
        "cartpole",
        "CartPole-v1",
        "classic_control.py",
        [
            "--num-envs",
            "4",
            "--num-steps",
            "128",
            "--epochs",
            "4",
            "--minibatch-size",
            "128",
            "--lr",
            "2.5e-4",
            "--gamma",
            "0.99",
            "--gae-lambda",
            "0.95",
            "--entropy-coef",
            "0.01",
            "--clip-value",
            "0.2",
        ],
        99_840,
        "cleanrl/ppo.py",
        [],
        512,
    ),
    "hopper": Workload(
        "hopper",
        "Hopper-v5",
        "mujoco.py",
        [],
        198_656,
        "cleanrl/ppo_continuous_action.py",
        ["--env-id", "Hopper-v5"],
        2048,
    ),
    "pong": Workload(
        "pong",
        "ALE/Pong-v5",
        "atari.py",
        ["--epochs", "4"],
        99_328,
        "cleanrl/ppo_atari.py",
        ["--env-id", "PongNoFrameskip-v4"],
        1024,
    ),
    "cheetah": Workload("cheetah", "dmc:cheetah-run", "mujoco.py", [], 198_656, "", [], 2048),
    # ppo_atari_lstm.py: Nature CNN -> LSTM(512 -> 128) -> heads, 8 x 128, 4 epochs x 4 minibatches of 2 whole envs
    "pong-lstm": Workload(
        "pong-lstm",
        "ALE/Pong-v5",
        "atari.py",
        ["--epochs", "4", "--policy", "lstm", "--lstm-hidden", "128"],
        99_328,
        "cleanrl/ppo_atari_lstm.py",
        ["--env-id", "PongNoFrameskip-v4"],
        1024,
    ),
}

# --paths: (env backend, collector, collector workers) per workload; the first is the default path
PATHS = {
    "cartpole": [
        ("gymnasium", "lean", 1),
        ("torchrl", "lean", 1),
        ("gymnasium", "torchrl", 1),
        ("torchrl", "torchrl", 1),
        ("gymnasium", "torchrl", 2),
    ],
    "hopper": [
        ("gymnasium", "lean", 1),
        ("torchrl", "lean", 1),
        ("gymnasium", "torchrl", 1),
        ("torchrl", "torchrl", 1),
    ],
    "pong": [("envpool", "lean", 1), ("gymnasium", "lean", 1), ("envpool", "torchrl", 1), ("gymnasium", "torchrl", 1)],
    "cheetah": [("torchrl", "lean", 1), ("torchrl", "torchrl", 1)],
}


def machine() -> dict[str, str]:
    """Cores, CPU model, date, Python and torch versions: what a figure of this session is tied to."""
    model = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return {
        "date": _dt.date.today().isoformat(),
        "cores": str(len(os.sched_getaffinity(0))),
        "cpu": model,
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def machine_line(info: dict[str, str]) -> str:
    """:func:`machine`'s figures as the one line above a table."""
    return f"{info['date']}, {info['cores']} cores, {info['cpu']}, GPU {info['gpu']}, torch {info['torch']}"


def _timed(cmd: list[str], cwd: Path, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:3])} ... failed (exit {p.returncode}): {p.stderr.strip()[-500:]}")
    return wall


def run_ours(w: Workload, steps: int, tmp: Path, extra: list[str]) -> dict:
    """One training run of ours in a fresh process; its wall clock and its time split by phase."""
    run_dir = tmp / f"ours-{w.key}-{time.monotonic_ns()}"
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / w.recipe),
        "--env-id",
        w.env_id,
        *w.args,
        "--total-steps",
        str(steps),
        "--eval-episodes",
        "0",
        "--no-progress",
        "--run-dir",
        str(run_dir),
        "--name",
        "bench",
        *extra,
    ]
    wall = _timed(cmd, ROOT)
    summary = json.loads((run_dir / "bench" / "summary.json").read_text())
    return {
        "wall_s": wall,
        "sps": steps / wall,
        "timing": summary["timing_s"],
        "last100": summary["last100_return_mean"],
    }


def run_peer(w: Workload, steps: int, peer_dir: Path | None, peer_python: str, tmp: Path) -> dict:
    """One run of the peer's script with the workload's budget: CleanRL's (in ``peer_dir``) with its own
    defaults, or without ``peer_dir`` SB3's through ``peer_sb3.py`` with our side's hyperparameters."""
    cwd = tmp / f"peer-{w.key}-{time.monotonic_ns()}"
    cwd.mkdir()
    if peer_dir is None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        script, args = Path(__file__).with_name("peer_sb3.py"), ["--workload", w.key]
    else:
        env = {**os.environ, "PYTHONPATH": str(peer_dir)}
        script, args = peer_dir / w.peer_script, w.peer_args
    wall = _timed([peer_python, str(script), *args, "--total-timesteps", str(steps)], cwd, env)
    return {"wall_s": wall, "sps": steps / wall}


def raw_env_sps(key: str, backend: str = "gymnasium", seconds: float = 5.0) -> float:
    """Vector-env steps/s x num_envs with random actions, same stack and batching as training: the ceiling."""
    from .. import config
    from ..algo.evaluation import RandomPolicy, rollout
    from ..envs import check, make_vector_env
    from ..run.prepare import prepare

    w = WORKLOADS[key]
    preset = {"cartpole": config.classic, "hopper": config.mujoco, "pong": config.atari}[key]
    n = {"cartpole": 4, "hopper": 1, "pong": 8}[key]
    cfg = prepare(preset(env_id=w.env_id, num_envs=n, env_backend=backend, minibatch_size=n))
    check(cfg)
    envs = make_vector_env(cfg, cfg.num_envs)
    steps = rollout(envs, RandomPolicy(envs, 0), list(range(cfg.num_envs)))
    next(steps)  # reset and a first step: start-up is not the rate
    count, t0 = 0, time.perf_counter()
    for i, _ in enumerate(steps, start=1):
        if i % 64 == 0 and time.perf_counter() - t0 >= seconds:
            count = i * cfg.num_envs
            break
    rate = count / (time.perf_counter() - t0)
    envs.close()
    return rate


def raw_table(keys: list[str], seconds: float) -> dict[str, dict[str, float]]:
    """:func:`raw_env_sps` of each workload's env on each backend that has it, printed as it goes."""
    from ..errors import UserError

    out: dict[str, dict[str, float]] = {}
    for k in keys:
        for backend in ("gymnasium", "envpool"):
            try:
                rate = raw_env_sps(k, backend, seconds)
            except UserError as e:
                print(f"{k:9} {backend:10}       n/a ({e})")
                continue
            out.setdefault(k, {})[backend] = rate
            print(f"{k:9} {backend:10} {rate:9.0f} steps/s (random actions, {WORKLOADS[k].env_id})", flush=True)
    return out


def collector_comparison(steps: int = 8192) -> dict[str, float]:
    """Collection alone (no training), same 64-64 policy on Hopper-v5: torchrl ``Collector`` over
    ``GymEnv`` against :class:`ppo_pipeline.algo.collect.Collector` over a gymnasium vector env."""
    import torch

    from ..workarounds import distribution_default_kept, quiet_torchrl_collectors

    quiet_torchrl_collectors()  # workaround 8
    with distribution_default_kept():  # workaround 6
        from torchrl.collectors import Collector as TorchRLCollector
        from torchrl.envs import DoubleToFloat, TransformedEnv
        from torchrl.envs.libs.gym import GymEnv

    from .. import config
    from ..algo.collect import Collector
    from ..algo.policy import Agent
    from ..envs import make_vector_env
    from ..envs.seeds import env_seeds
    from ..run.prepare import prepare

    cfg = prepare(config.mujoco(normalize_obs=False, scale_reward=False))
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


def _median(runs: list[dict], key: str = "sps") -> float:
    return statistics.median(r[key] for r in runs)


def compare(
    keys: list[str],
    steps: dict[str, int],
    repeat: int,
    peer: str,
    peer_dir: Path | None,
    peer_python: str,
    extra: list[str],
) -> dict:
    """Run the workloads (peer then ours, ``repeat`` times each; ``peer`` "" for none) and print a row per workload."""
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as tmp:
        for k in keys:
            w = WORKLOADS[k]
            n = steps.get(k, w.steps)
            res: dict = {"steps": n, "ours": [], "peer": []}
            for i in range(repeat):
                if peer:
                    res["peer"].append(run_peer(w, n, peer_dir, peer_python, Path(tmp)))
                res["ours"].append(run_ours(w, n, Path(tmp), extra))
                peer = f"peer {res['peer'][-1]['sps']:.0f}, " if res["peer"] else ""
                print(
                    f"[bench] {k} repeat {i + 1}/{repeat}: {peer}ours {res['ours'][-1]['sps']:.0f} steps/s", flush=True
                )
            results[k] = res
    return results


def compare_paths(keys: list[str], steps: dict[str, int], repeat: int, extra: list[str]) -> dict:
    """Ours on every (env backend, collector, workers) of :data:`PATHS`, one after the other; a row each."""
    results: dict[str, list] = {}
    with tempfile.TemporaryDirectory(prefix="ppo-bench-") as tmp:
        for k in keys:
            w = WORKLOADS[k]
            n = steps.get(k, w.steps)
            rows = []
            for backend, collector, workers in PATHS[k]:
                opts = ["--env-backend", backend, "--collector", collector, "--collector-workers", str(workers)]
                runs = [run_ours(w, n, Path(tmp), [*opts, *extra]) for _ in range(repeat)]
                rows.append(
                    {
                        "backend": backend,
                        "collector": collector,
                        "workers": workers,
                        "steps": n,
                        "sps": _median(runs),
                        "runs": runs,
                    }
                )
                print(f"[bench] {k} {backend}/{collector}x{workers}: {rows[-1]['sps']:.0f} steps/s", flush=True)
            results[k] = rows
    return results


def print_paths(results: dict, info: dict[str, str]) -> None:
    print(f"\n{machine_line(info)}")
    print(f"{'workload':9} {'env backend':12} {'collector':14} {'steps':>8} {'ours SPS':>9} {'vs first':>8}")
    for k, rows in results.items():
        for r in rows:
            coll = r["collector"] + (f" x{r['workers']}" if r["workers"] > 1 else "")
            print(
                f"{k:9} {r['backend']:12} {coll:14} {r['steps']:>8} {r['sps']:>9.0f} {r['sps'] / rows[0]['sps']:>8.2f}"
            )


def print_table(results: dict, info: dict[str, str]) -> None:
    print(f"\n{machine_line(info)}")
    print(
        f"{'workload':9} {'steps':>8} {'peer SPS':>9} {'ours SPS':>9} {'ratio':>6} | time split of ours (% of wall): "
        f"env policy other gae update eval start-up"
    )
    for k, res in results.items():
        ours = _median(res["ours"])
        peer = _median(res["peer"]) if res["peer"] else None
        mid = sorted(res["ours"], key=lambda r: r["sps"])[len(res["ours"]) // 2]
        t, wall = mid["timing"], mid["wall_s"]
        split = " ".join(
            f"{100 * t[p] / wall:.0f}" for p in ("env", "policy", "collect_other", "gae", "update", "eval")
        )
        startup = 100 * (wall - sum(t.values())) / wall
        print(
            f"{k:9} {res['steps']:>8} {'-' if peer is None else f'{peer:.0f}':>9} {ours:>9.0f} "
            f"{'-' if peer is None else f'{ours / peer:.2f}':>6} | {split} {startup:.0f}"
        )


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(
        prog="python -m ppo_pipeline.bench",
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--envs",
        default="cartpole,hopper,pong",
        help="comma list of cartpole, hopper, pong (and cheetah, with --paths)",
    )
    p.add_argument("--steps", default="", help="budget overrides for both sides, e.g. hopper=20480,pong=10240")
    p.add_argument("--repeat", type=int, default=1, help="runs of each side per workload (the median is shown)")
    p.add_argument(
        "--peer-dir",
        type=Path,
        default=None,
        help="folder holding CleanRL's cleanrl/ppo.py, ppo_continuous_action.py, ppo_atari.py; without "
        "it only ours runs and no ratio is printed",
    )
    p.add_argument(
        "--peer",
        choices=("cleanrl", "sb3"),
        default="cleanrl",
        help="cleanrl: CleanRL's scripts in --peer-dir, with their defaults; sb3: Stable-Baselines3's PPO "
        "(peer_sb3.py, run by --peer-python) with our hyperparameters, cartpole and hopper",
    )
    p.add_argument("--peer-python", default=sys.executable, help="the Python (venv) that runs the peer")
    p.add_argument("--ours", default="", help='extra options for our runs, e.g. "--env-backend envpool"')
    p.add_argument("--raw", action="store_true", help="only the raw env rate (random actions) per backend")
    p.add_argument("--raw-seconds", type=float, default=5.0, help="seconds of random-action stepping per raw rate")
    p.add_argument(
        "--collectors",
        action="store_true",
        help="only compare torchrl's Collector with ours on Hopper-v5 (collection alone)",
    )
    p.add_argument(
        "--paths",
        action="store_true",
        help="ours only, one run per env backend x collector of each workload (the TorchRL path's cost)",
    )
    p.add_argument(
        "--pack",
        default="",
        metavar="P,P",
        help="pack sizes: the same P runs one after the other, then as one pack (hopper, cartpole), e.g. 8,33",
    )
    p.add_argument("--pack-updates", type=int, default=4, help="updates per run for --pack (the first is warm-up)")
    p.add_argument(
        "--shared",
        action="store_true",
        help="runs sharing the machine: each thread policy alone and two runs at once (cartpole, hopper, pong)",
    )
    p.add_argument(
        "--ranks",
        default="",
        metavar="W,W",
        help="one run as 1 process and as W ranks (--nproc-per-node W): hopper, humanoid, pong (--envs, "
        "default all three)",
    )
    p.add_argument(
        "--stacking",
        action="store_true",
        help="only the pack's two stacking mechanisms (baddbmm, vmap) on Table 3's MLP: steps/s of each",
    )
    p.add_argument(
        "--minibatch",
        action="store_true",
        help="only the eager update's cost per minibatch: a run's (torchrl's loss) beside the same arithmetic in "
        "plain torch (cartpole, hopper; --repeat rounds, at least 3)",
    )
    p.add_argument("--json", default="", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    try:
        steps = {k: int(v) for k, v in (kv.split("=") for kv in args.steps.split(",") if kv)}
    except ValueError:
        p.error(f"--steps {args.steps!r}: expected key=int pairs like hopper=20480")
    if args.stacking:
        from . import bench_pack

        rows = bench_pack.stacking_comparison()
        for r in rows:
            print(
                f"P={r['members']:3d} rows={r['rows']}: baddbmm {r['baddbmm']:8.0f} steps/s, "
                f"vmap {r['vmap']:8.0f} steps/s ({r['baddbmm'] / r['vmap']:.2f}x)"
            )
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "stacking": rows}, indent=2) + "\n")
        return 0
    keys = [k.strip() for k in args.envs.split(",") if k.strip()]
    if args.minibatch:
        from . import bench_minibatch

        keys = ["cartpole", "hopper"] if args.envs == p.get_default("envs") else keys
        if [k for k in keys if k not in ("cartpole", "hopper")]:
            p.error(f"--envs with --minibatch: {args.envs!r}; allowed: cartpole, hopper")
        rows = bench_minibatch.minibatch_comparison([WORKLOADS[k] for k in keys], max(3, args.repeat), steps)
        print(machine_line(machine()))
        bench_minibatch.print_table(rows)
        if args.json:
            Path(args.json).write_text(json.dumps({"machine": machine(), "minibatch": rows}, indent=2) + "\n")
        return 0
    if args.ranks:
        from . import bench_ranks

        keys = list(bench_ranks.WORKLOADS) if args.envs == p.get_default("envs") else keys
        bad = [k for k in keys if k not in bench_ranks.WORKLOADS]
        if bad:
            p.error(f"--envs with --ranks: unknown {', '.join(bad)}; allowed: {', '.join(bench_ranks.WORKLOADS)}")
        try:
            worlds = [int(x) for x in args.ranks.split(",") if x.strip()]
        except ValueError:
            p.error(f"--ranks {args.ranks!r}: expected ints like 1,2")
        figures = {"machine": machine(), "ranks": bench_ranks.run(keys, worlds, steps, args.ours.split())}
        bench_ranks.print_table(figures["ranks"])
        print()
        bench_ranks.print_projection()
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
        return 0
    bad = [k for k in keys if k not in WORKLOADS]
    if bad:
        p.error(f"--envs: unknown {', '.join(bad)}; allowed: {', '.join(WORKLOADS)}")
    if args.repeat < 1:
        p.error(f"--repeat {args.repeat}: must be >= 1")
    if not args.paths and "cheetah" in keys:
        p.error("--envs cheetah: no peer script runs it; it is a --paths workload")
    if args.peer == "sb3":
        from .peer_sb3 import HYPER

        if args.peer_dir is not None or [k for k in keys if k not in HYPER]:
            p.error(f"--peer sb3 runs --envs {','.join(HYPER)} and takes no --peer-dir (that is CleanRL's)")
    if args.peer_dir is not None:
        args.peer_dir = args.peer_dir.resolve()
        missing = [
            w.peer_script for w in WORKLOADS.values() if w.key in keys and not (args.peer_dir / w.peer_script).is_file()
        ]
        if missing:
            p.error(f"--peer-dir {str(args.peer_dir)!r} has no {', '.join(missing)}")
    info = machine()
    out: dict = {"machine": info}
    if args.collectors:
        for name, sps in collector_comparison().items():
            print(f"{name:48} {sps:8.0f} steps/s (Hopper-v5, collection only)")
        return 0
    if args.shared:
        from . import bench_shared

        out["shared"] = bench_shared.run([k for k in keys if k in bench_shared.WORKLOADS])
        bench_shared.print_table(out["shared"])
    elif args.pack:
        from . import bench_pack

        sizes = [int(x) for x in args.pack.split(",") if x.strip()]
        out["pack"] = bench_pack.run([k for k in keys if k in bench_pack.WORKLOADS], sizes, args.pack_updates)
        bench_pack.print_table(out["pack"])
    elif args.paths:
        out["paths"] = compare_paths(keys, steps, args.repeat, args.ours.split())
        print_paths(out["paths"], info)
    elif args.raw:
        out["raw"] = raw_table(keys, args.raw_seconds)
    else:
        peer = "sb3" if args.peer == "sb3" else "cleanrl" if args.peer_dir is not None else ""
        out["peer"] = peer
        out["results"] = compare(keys, steps, args.repeat, peer, args.peer_dir, args.peer_python, args.ours.split())
        print_table(out["results"], info)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
