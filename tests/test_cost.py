"""--dry-run's cost (issue 29, item 1): each unit of a plan is timed by the bench figure of its own workload
(solo or pack, family, backend), whichever file in results/bench/ holds it; a unit with none is named, never
counted as 0 hours."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import helpers
import pytest

from ppo_pipeline import config
from ppo_pipeline.run.prepare import prepare
from ppo_pipeline.sweeps import cost

ROOT = Path(__file__).resolve().parents[1]
CPU = {"cores": "2", "gpu": "none", "date": "2026-01-01"}


def _bench(tmp_path: Path, files: dict[str, dict]) -> Path:
    bench = tmp_path / "bench"
    bench.mkdir()
    for name, data in files.items():
        (bench / name).write_text(json.dumps(data))
    return bench


def _run(name: str, **overrides) -> dict:
    return {"name": name, "config": prepare(config.mujoco(**overrides), device=False).to_dict()}


def test_estimate_reads_the_file_with_the_workloads_figure_not_the_newest_name(tmp_path):
    """The newest-named file (an LSTM bench) has no hopper figure: the older file that has one is used."""
    bench = _bench(tmp_path, {
        "bench-2026-01-01-cpu.json": {"machine": CPU, "results": {
            "hopper": {"ours": [{"sps": 1000.0}, {"sps": 1200.0}, {"sps": 800.0}]}}},
        "lstm-2026-02-01-cpu.json": {"machine": {**CPU, "date": "2026-02-01"}, "results": {
            "pong-lstm": {"ours": [{"sps": 500.0}]}}},
    })
    runs = [_run("a", total_steps=3_600_000)]
    lines = cost.estimate(runs, gpu=False, bench_dir=bench)
    assert lines[0] == "plan: 1 run(s), 3,600,384 agent steps in all"
    assert "hopper, alone" in lines[1] and "3,600,384 steps at 1,000 steps/s = 1.0 h" in lines[1]
    assert "bench-2026-01-01-cpu.json" in lines[1]
    assert lines[-1].startswith("estimated: 2.0 core-hours")


def test_estimate_times_a_pack_by_a_pack_figure_at_the_nearest_size(tmp_path):
    bench = _bench(tmp_path, {"pack.json": {"machine": CPU, "pack": [
        {"workload": "hopper", "P": 8, "solo_sps": 2000.0, "pack_sps": 8000.0},
        {"workload": "hopper", "P": 33, "solo_sps": 2000.0, "pack_sps": 16000.0}]}})
    runs = [_run(f"r{i}", seed=i, total_steps=204_800) for i in range(4)]
    packed = cost.estimate(runs, gpu=False, packs=[[r["name"] for r in runs]], bench_dir=bench)
    assert "packs of 4" in packed[1] and "at 8,000 steps/s" in packed[1] and "measured at P=8" in packed[1]
    alone = cost.estimate(runs, gpu=False, bench_dir=bench)
    assert "alone" in alone[1] and "at 2,000 steps/s" in alone[1]


def test_estimate_prefers_the_runs_backend(tmp_path):
    bench = _bench(tmp_path, {"paths.json": {"machine": CPU, "paths": {"hopper": [
        {"backend": "gymnasium", "collector": "lean", "workers": 1, "sps": 1000.0},
        {"backend": "torchrl", "collector": "lean", "workers": 1, "sps": 500.0}]}}})
    line = cost.estimate([_run("a", env_backend="torchrl")], gpu=False, bench_dir=bench)[1]
    assert "torchrl envs" in line and "at 500 steps/s" in line


def test_no_matching_figure_is_said_plainly_not_zero(tmp_path):
    bench = _bench(tmp_path, {"b.json": {"machine": CPU, "results": {"pong": {"ours": [{"sps": 300.0}]}}}})
    lines = cost.estimate([_run("a")], gpu=False, bench_dir=bench)
    assert "no measured CPU speed for hopper" in lines[1]
    assert "python -m ppo_pipeline.bench --envs hopper" in lines[2]
    assert lines[-1] == "estimated: unknown (no CPU speed measured for these runs' workloads)"
    assert "0.0" not in "\n".join(lines)
    assert cost.estimate([_run("a")], gpu=True, bench_dir=bench)[-1].startswith("estimated: unknown (no GPU speed")


def _estimated_hours(stdout: str) -> float:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("estimated:"))
    m = re.match(r"estimated: ([\d,.]+) core-hours", line)
    assert m, line
    return float(m.group(1).replace(",", ""))


DRY_RUNS = [
    ("atari.py", ["--seeds", "0-1"]),
    ("mujoco.py", ["--seeds", "0-1"]),
    ("classic_control.py", ["--seeds", "0-1"]),
    ("humanoid.py", ["--seeds", "0-1"]),
    ("mujoco.py", ["--clip-epsilon", "0.1,0.2", "--seeds", "0-1"]),
    ("mujoco.py", ["--experiment", "table1", "--env-id", "Hopper-v5", "--pack", "33"]),
]


@pytest.fixture(scope="module")
def dry_runs() -> list[subprocess.CompletedProcess]:
    """Each DRY_RUNS command with --dry-run, two at a time."""
    return helpers.run_two_at_a_time([[sys.executable, str(ROOT / "recipes" / r), *argv, "--dry-run"]
                                      for r, argv in DRY_RUNS])


@pytest.mark.slow
@pytest.mark.parametrize("case", range(len(DRY_RUNS)), ids=[f"{r}-{' '.join(a)}" for r, a in DRY_RUNS])
def test_recipe_dry_runs_estimate_hours_from_this_checkouts_bench(dry_runs, case):
    """Every recipe's default sweep, and a pack plan, gets a positive estimate from results/bench/."""
    p, argv = dry_runs[case], DRY_RUNS[case][1]
    assert p.returncode == 0, p.stderr
    assert "no measured" not in p.stdout and " figure in " not in p.stdout, p.stdout
    assert _estimated_hours(p.stdout) > 0, p.stdout
    if "--pack" in argv:
        assert "packs of 33" in p.stdout and "pack-" in p.stdout, p.stdout
