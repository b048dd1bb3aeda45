"""``python -m ppo_pipeline.bench --pack 8,33``: the same P runs one after the other, then as one pack.

Per workload (Hopper-v5 with the Table 3 preset: for P=33 the 33 runs of Table 1's Hopper column -- 11
objectives x 3 seeds --, otherwise P seeds of the clip row; CartPole-v1 with the classic preset, P seeds),
both sides train the same runs for the same updates, eval off. Each solo run is its own process, as a user
starts it; the pack is one process. Each side compiles (``--compile on``/``off``) as ``--compile auto``
decides for it at the preset's full budget (:func:`full_budget_compile`), not at the bench's few updates:
what one after the other and one pack would really run. A rate is taken over the steady state -- from the
end of the first update to the end of the last (``metrics.csv``'s ``time_s``) -- so start-up and compilation
count on neither side. Printed: total agent steps/s of both, the ratio, and where the pack's time goes (env
stepping, policy, update) over the same updates (``pack.json``'s ``timing_steady_s``).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# key: (recipe, its preset in ppo_pipeline.config, env id, agent steps per update)
WORKLOADS = {
    "hopper": ("mujoco.py", "mujoco", "Hopper-v5", 2048),
    "cartpole": ("classic_control.py", "classic", "CartPole-v1", 256),
}
COMMON = ["--eval-episodes", "0", "--no-progress", "--no-tensorboard", "--checkpoint-every", "1000"]


def steady_rate(run: Path) -> tuple[int, float]:
    """(agent steps, seconds) of a run from the end of its first update to the end of its last."""
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    return int(rows[-1]["step"]) - int(rows[0]["step"]), float(rows[-1]["time_s"]) - float(rows[0]["time_s"])


def _run(cmd: list[str]) -> None:
    p = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd[:4])} ... failed: {p.stderr.strip()[-400:]}")


def full_budget_compile(preset: str, env_id: str, members: int) -> str:
    """``on``/``off``: what ``--compile auto`` does for a run (``members`` = 1) or a pack of ``members`` of the
    preset at its full budget, on this machine's CPU."""
    import torch

    from .. import config
    from ..algo import compiling

    cfg = getattr(config, preset)(env_id=env_id, compile="auto")
    on = compiling.wanted_at_budget(cfg, pixels=False, device=torch.device("cpu"), members=members)
    return "on" if on else "off"


def members(key: str, size: int) -> list[list[str]]:
    """The options of each of the P runs (the solo side runs them one by one)."""
    if key == "hopper" and size == 33:
        from ..paper import TABLE1

        rows = [["--objective", o] + ([f"--{p.replace('_', '-')}", f"{v:g}"] if p else []) for o, p, v, _ in TABLE1]
        return [[*r, "--seed", str(s)] for r in rows for s in range(3)]
    return [["--seed", str(s)] for s in range(size)]


def bench(key: str, size: int, updates: int, tmp: Path) -> dict:
    recipe, preset, env_id, batch = WORKLOADS[key]
    budget = ["--env-id", env_id, "--total-steps", str(updates * batch), *COMMON]
    compile_solo, compile_pack = full_budget_compile(preset, env_id, 1), full_budget_compile(preset, env_id, size)
    solo_steps, solo_s = 0, 0.0
    for i, opts in enumerate(members(key, size)):
        _run(
            [
                f"recipes/{recipe}",
                *budget,
                "--compile",
                compile_solo,
                *opts,
                "--run-dir",
                str(tmp / f"solo-{key}-{size}"),
                "--name",
                f"r{i}",
            ]
        )
        n, s = steady_rate(tmp / f"solo-{key}-{size}" / f"r{i}")
        solo_steps, solo_s = solo_steps + n, solo_s + s
    sweep = tmp / f"pack-{key}-{size}"
    if key == "hopper" and size == 33:
        grid = ["--experiment", "table1", "--seeds", "0-2"]
    else:
        grid = ["--seeds", f"0-{size - 1}"]
    _run(
        [f"recipes/{recipe}", *budget, "--compile", compile_pack, *grid, "--pack", str(size), "--sweep-dir", str(sweep)]
    )
    runs = sorted((sweep / "runs").iterdir())
    n, s = steady_rate(runs[0])
    import json

    pack_json = json.loads(next((sweep / "packs").glob("*/pack.json")).read_text())
    timing = pack_json["timing_steady_s"]  # updates 2..N: the first compiles
    return {
        "workload": key,
        "P": size,
        "updates": updates,
        "compile_solo": compile_solo,
        "compile_pack": compile_pack,
        "solo_sps": solo_steps / solo_s,
        "pack_sps": n * len(runs) / s,
        "ratio": (n * len(runs) / s) / (solo_steps / solo_s),
        "pack_timing_s": timing,
    }


def run(keys: list[str], sizes: list[int], updates: int) -> list[dict]:
    out = []
    with tempfile.TemporaryDirectory(prefix="ppo-bench-pack-") as tmp:
        for key in keys:
            for size in sizes:
                r = bench(key, size, updates, Path(tmp))
                out.append(r)
                print(
                    f"[bench] {key} P={size}: solo (compile {r['compile_solo']}) {r['solo_sps']:,.0f}, pack (compile "
                    f"{r['compile_pack']}) {r['pack_sps']:,.0f} agent steps/s "
                    f"= {r['ratio']:.1f}x",
                    flush=True,
                )
    return out


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'workload':9} {'P':>3} {'compile solo/pack':>17} {'solo SPS':>9} {'pack SPS':>9} {'ratio':>6} | pack time "
        f"split (% of its phases, updates 2-N): env policy collect-other update"
    )
    for r in rows:
        t = r["pack_timing_s"]
        total = sum(t[k] for k in ("env", "policy", "collect_other", "gae", "update")) or 1.0
        split = " ".join(f"{100 * t[k] / total:.0f}" for k in ("env", "policy", "collect_other", "update"))
        print(
            f"{r['workload']:9} {r['P']:>3} {r['compile_solo'] + '/' + r['compile_pack']:>17} {r['solo_sps']:>9,.0f} {r['pack_sps']:>9,.0f} {r['ratio']:>5.1f}x | {split}"
        )


def stacking_comparison(sizes: Sequence[int] = (8, 33), rows: int = 64, seconds: float = 3.0) -> list[dict[str, float]]:
    """The two stacking mechanisms of :mod:`ppo_pipeline.pack.stacked` on Table 3's MLP (11 -> 64 -> 64 -> 3, tanh;
    Hopper's policy): a forward and backward of a [P, rows] minibatch per step, steps/s of each for P members
    (``python -m ppo_pipeline.bench --stacking``)."""
    import time

    import torch
    from torch import nn

    from ..pack.stacked import VmapStacked, stack

    out = []
    for p in sizes:
        torch.manual_seed(0)
        solo: list[nn.Module] = [
            nn.Sequential(nn.Linear(11, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 3))
            for _ in range(p)
        ]
        x = torch.randn(p, rows, 11)
        row: dict[str, float] = {"members": p, "rows": rows}
        for name, net in (("baddbmm", stack(solo)), ("vmap", VmapStacked(solo))):
            for _ in range(20):  # warm-up
                net(x).square().sum().backward()
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                net(x).square().sum().backward()
                n += 1
            row[name] = n / (time.perf_counter() - t0)
        out.append(row)
    return out
