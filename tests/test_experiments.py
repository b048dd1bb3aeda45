"""The paper's experiments as one command each (issue 10): grids over any field, named experiments,
--dry-run, and the report in the paper's layout. Planning only: nothing here trains (the sweep tests
train)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import helpers
import pytest

from ppo_pipeline import config, launch, paper
from ppo_pipeline.envs import ids as env_ids
from ppo_pipeline.sweeps import experiments

ROOT = Path(__file__).resolve().parents[1]


def _dry(recipe: str, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "recipes" / recipe), *argv, "--dry-run"], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_grid_over_any_field_is_the_cartesian_product(tmp_path, capsys):
    """--clip-epsilon 0.1,0.2 --lr 3e-4,1e-3 --env CartPole-v1,Acrobot-v1 x 2 seeds = 16 runs, named by
    what varies, with their values recorded in the manifest."""
    sdir = tmp_path / "s"
    argv = ["--clip-epsilon", "0.1,0.2", "--lr", "3e-4,1e-3", "--env", "CartPole-v1,Acrobot-v1", "--seeds", "0-1",
            "--sweep-dir", str(sdir), "--total-steps", "256", "--num-envs", "4", "--num-steps", "16",
            "--minibatch-size", "32", "--epochs", "1", "--eval-episodes", "0", "--no-tensorboard", "--no-progress",
            "--torch-threads", "1"]
    assert launch.main(config.classic, "t", argv) == 0
    manifest = json.loads((sdir / "manifest.json").read_text())
    names = [r["name"] for r in manifest["runs"]]
    assert len(names) == len(set(names)) == 16
    assert "CartPole-v1__clip__lr=0.0003__clip_epsilon=0.1__s0" in names
    run = next(r for r in manifest["runs"] if r["name"] == "Acrobot-v1__clip__lr=0.001__clip_epsilon=0.2__s1")
    assert run["varied"] == {"lr": 0.001, "clip_epsilon": 0.2}
    assert run["config"]["clip_epsilon"] == 0.2 and run["config"]["lr"] == 0.001 and run["config"]["seed"] == 1
    assert "16/16 runs finished" in capsys.readouterr().out


def test_experiment_table1_plan():
    """--experiment table1: the 11 rows x 7 tasks x seeds 0-2 x 1M steps = 231 runs with the Table 3
    preset; --dry-run prints the plan and starts nothing."""
    p = _dry("mujoco.py", ["--experiment", "table1", "--sweep-dir", "/nonexistent/never-made"])
    assert p.returncode == 0, p.stderr
    assert "plan: 231 run(s), 231,340,032 agent steps in all" in p.stdout      # 489 batches of 2048 per run
    assert "nothing started (--dry-run)" in p.stdout
    assert not Path("/nonexistent/never-made").exists()
    rows = experiments.EXPERIMENTS["table1"].variants
    assert len(rows) == 11 and {"objective": "kl_adaptive", "kl_target": 0.003} in rows and {"objective": "none"} in rows


def test_experiment_overrides_and_names(tmp_path):
    p = _dry("mujoco.py", ["--experiment", "table1", "--env-id", "Hopper-v5,Swimmer-v5", "--seeds", "0",
                           "--total-steps", "20480"])
    assert p.returncode == 0, p.stderr
    assert "plan: 22 run(s), 450,560 agent steps in all" in p.stdout
    assert "Hopper-v5__none__s0" in p.stdout and "Hopper-v5__clip__clip_epsilon=0.1__s0" in p.stdout


def test_experiment_table6_plan():
    p = _dry("atari.py", ["--experiment", "table6", "--seeds", "0"])
    assert p.returncode == 0, p.stderr
    assert "plan: 49 run(s), 490,018,816 agent steps in all" in p.stdout    # 9,766 batches of 1,024 per game


def test_every_table6_game_is_an_ale_id():
    for game in paper.TABLE6:
        assert env_ids.is_atari(env_ids.resolve_env_id(paper.atari_id(game))), game
    assert len(paper.TABLE6) == 49 and len(paper.TABLE1) == 11


BAD = [
    ("mujoco.py", ["--experiment", "table9"], "--experiment 'table9' is unknown; known: table1"),
    ("atari.py", ["--experiment", "table1"], "run it with recipes/mujoco.py"),
    ("mujoco.py", ["--experiment", "table1", "--env-id", "Ant-v5"], "'Ant-v5' is not one of table1's envs"),
    ("classic_control.py", ["--lr", "0.1,abc"], "invalid float value: 'abc'"),
    ("classic_control.py", ["--objective", "clip,bogus"], "invalid choice: 'bogus'"),
    ("classic_control.py", ["--lr", "0.1,-1"], "lr=-1.0 must be > 0"),
]


@pytest.fixture(scope="module")
def refused() -> list[subprocess.CompletedProcess]:
    """Each BAD case's --dry-run, two at a time."""
    return helpers.run_two_at_a_time([[sys.executable, str(ROOT / "recipes" / r), *argv, "--dry-run"]
                                      for r, argv, _ in BAD])


@pytest.mark.parametrize("case", range(len(BAD)), ids=[f"{r}-{n[:40]}" for r, _, n in BAD])
def test_bad_experiment_or_grid_is_one_line(refused, case):
    p, needle = refused[case], BAD[case][2]
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and needle in p.stderr, p.stderr
