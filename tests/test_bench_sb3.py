"""The bench's pip-installable peer (``bench --peer sb3``, ``ppo_pipeline/tools/peer_sb3.py``): its hyperparameters
are our side's, parsed from the bench's workloads as our recipes resolve them (no training); and, where the
peer's venv is set up as docs/speed.md says, the docs' command runs with a tiny budget."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from ppo_pipeline.cli import build_parser, config_from_args
from ppo_pipeline.config import PRESETS
from ppo_pipeline.tools import peer_sb3
from ppo_pipeline.tools.bench import WORKLOADS

ROOT = Path(__file__).resolve().parents[1]
SB3_PYTHON = Path("/tmp/sb3-venv/bin/python")
RECIPE_PRESET = {"classic_control.py": "classic", "mujoco.py": "mujoco"}


def ours(key: str):
    """The Config our side of the bench trains for workload ``key``: its recipe's preset and the bench's options."""
    w = WORKLOADS[key]
    parser = build_parser(PRESETS[RECIPE_PRESET[w.recipe]], "", atari=False)
    return config_from_args(parser.parse_args(["--env-id", w.env_id, *w.args]))


@pytest.mark.parametrize("key", sorted(peer_sb3.HYPER))
def test_peer_hyperparameters_match_the_bench(key):
    cfg, h, w = ours(key), peer_sb3.HYPER[key], WORKLOADS[key]
    differ = {k: (v, getattr(cfg, k)) for k, v in h.items() if getattr(cfg, k) != v}
    assert not differ, f"{key}: peer_sb3.HYPER vs our side (peer, ours): {differ}"
    assert not cfg.shared_trunk and h["num_envs"] * h["num_steps"] == w.batch and w.steps % w.batch == 0
    kw = peer_sb3.sb3_kwargs(h, seed=0)   # what SB3's PPO gets, named its way
    assert (kw["n_steps"], kw["batch_size"], kw["n_epochs"]) == (cfg.num_steps, cfg.minibatch_size, cfg.epochs)
    assert (kw["gamma"], kw["gae_lambda"], kw["ent_coef"], kw["vf_coef"], kw["max_grad_norm"]) == (
        cfg.gamma, cfg.gae_lambda, cfg.entropy_coef, cfg.value_coef, cfg.max_grad_norm)
    assert kw["clip_range_vf"] == (cfg.clip_value or None)
    assert kw["policy_kwargs"]["net_arch"] == {"pi": cfg.hidden_sizes, "vf": cfg.hidden_sizes}
    assert kw["policy_kwargs"]["optimizer_kwargs"] == {"eps": cfg.adam_eps}
    for name, base in (("learning_rate", cfg.lr), ("clip_range", cfg.clip_epsilon)):
        assert kw[name](1.0) == base and kw[name](0.25) == pytest.approx(base * (0.25 if cfg.anneal else 1.0))


def test_peer_script_dry_run_imports_nothing_of_ours_nor_sb3():
    """Run as a file by a bare Python (``-S``-free but with no PYTHONPATH to ours): --dry-run prints SB3's
    arguments as JSON; a bad workload is argparse's one line."""
    script = ROOT / "ppo_pipeline" / "tools" / "peer_sb3.py"
    code = "import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    probe = f"{code}\nassert not [m for m in sys.modules if m.split('.')[0] in ('ppo_pipeline', 'stable_baselines3')]"
    p = subprocess.run([sys.executable, "-c", probe, str(script), "--workload", "hopper", "--dry-run",
                        "--total-timesteps", "4096"], capture_output=True, text=True, cwd="/")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["env_id"] == "Hopper-v5" and out["total_timesteps"] == 4096 and out["batch_size"] == 64
    bad = subprocess.run([sys.executable, str(script), "--workload", "pong"], capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not SB3_PYTHON.is_file(), reason="no /tmp/sb3-venv (docs/speed.md: how to make it)")
def test_bench_beside_sb3():
    """docs/speed.md's commands: the venv (its python imports stable_baselines3), then the bench beside SB3
    from the repository root, tiny budgets: a row per workload with both figures and their ratio."""
    from test_readme import ELSEWHERE, run_as_printed

    venv = next(c for c in ELSEWHERE if c.startswith("python3 -m venv /tmp/sb3-venv"))
    assert "torch==2.13.0" in venv and "stable-baselines3" in venv
    subprocess.run([str(SB3_PYTHON), "-c", "import stable_baselines3, gymnasium, mujoco"], check=True)
    cmd = next(c for c in ELSEWHERE if "--peer sb3" in c)
    argv = shlex.split(cmd)
    argv[argv.index("--repeat") + 1] = "1"
    p = run_as_printed(shlex.join(argv), ["--steps", "cartpole=1024,hopper=2048"], ROOT)
    rows = {line.split()[0]: line.split("|")[0].split() for line in p.stdout.splitlines()
            if line.startswith(("cartpole ", "hopper "))}
    assert set(rows) == {"cartpole", "hopper"}, p.stdout
    for cells in rows.values():
        peer, mine, ratio = float(cells[2]), float(cells[3]), float(cells[4])
        assert peer > 0 and mine > 0 and abs(ratio - mine / peer) < 0.02, p.stdout
