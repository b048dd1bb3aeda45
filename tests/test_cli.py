"""Bad input: one clear line on stderr, exit code 2, before any environment starts. And --help."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import refusal

from ppo_pipeline import config, envs, launch
from ppo_pipeline.run import trainer as _trainer  # noqa: F401  imported before no_envs patches what it imports
from ppo_pipeline.run.prepare import budget_line, prepare

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_envs(monkeypatch):
    """Fail the test if anything tries to build an environment."""
    def boom(*a, **k):
        raise AssertionError("an environment was created before the input was validated")

    monkeypatch.setattr(envs, "make_vector_env", boom)
    monkeypatch.setattr("ppo_pipeline.run.trainer.make_vector_env", boom)


def one_line_error(capsys, preset, argv, *, atari_only=False) -> str:
    """A recipe's refusal of ``argv``: its one line."""
    return refusal(capsys, lambda: launch.main(preset, "test", argv, atari_only=atari_only))



CASES = [
    (["--env-id", "CartPol-v1"], "'CartPol-v1' is not a registered", "CartPole-v1"),
    (["--lr", "0"], "lr=0.0 must be > 0", None),
    (["--lr", "-0.001"], "lr=-0.001 must be > 0", None),
    (["--clip-epsilon", "0"], "clip_epsilon=0.0 must be > 0", None),
    (["--gamma", "1.5"], "gamma=1.5 must be in [0, 1]", None),
    (["--gae-lambda", "-0.1"], "gae_lambda=-0.1 must be in [0, 1]", None),
    (["--minibatch-size", "512"], "minibatch_size=512 is larger than the batch", "256"),
    (["--minibatch-size", "100"], "minibatch_size=100 does not divide the batch", "128"),
    (["--objective", "ppo2"], "invalid choice: 'ppo2'", "kl_adaptive"),
    (["--num-envs", "x"], "invalid int value: 'x'", None),
    (["--seed", "-1"], "seed=-1 must be in [0, 4294967295]", None),
    (["--seed", "4294967296"], "seed=4294967296 must be in [0, 4294967295]", None),
    (["--num-envs", "60000", "--minibatch-size", "64"], "num_envs=60000 must be <= 50000", None),
    (["--torch-threads", "100000"], "torch_threads=100000 must be <= 1024", None),
    (["--hidden-sizes", ""], "hidden_sizes is empty", "64,64"),
    (["--lrr", "0.1"], "unrecognized arguments: --lrr", "did you mean --lr"),
    (["--total-steps", "0"], "total_steps=0 must be >= 1", None),
]


@pytest.mark.parametrize("argv,needle,hint", CASES, ids=[c[1][:30] for c in CASES])
def test_bad_input_one_line_exit_2(capsys, no_envs, tmp_path, argv, needle, hint):
    line = one_line_error(capsys, config.classic, argv + ["--run-dir", str(tmp_path)])
    assert needle in line, line
    if hint:
        assert hint in line, line


def test_atari_recipe_refuses_non_atari_env(capsys, no_envs, tmp_path):
    line = one_line_error(capsys, config.atari, ["--env-id", "CartPole-v1", "--run-dir", str(tmp_path)],
                          atari_only=True)
    assert "'CartPole-v1' is not an Atari game" in line


def test_any_budget_runs_whole_batches_rounded_up(tmp_path, capsys):
    """A budget that is not a multiple of the batch is never an error: the run trains the whole batches
    that cover it, says so in one line at the start, and config.json records both numbers."""
    assert launch.main(config.classic, "t", ["--total-steps", "1000", "--eval-episodes", "0", "--run-dir",
                                             str(tmp_path), "--no-progress", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "CartPole-v1: 1,024 agent steps = 4 updates of 8 envs x 32 steps (1,000 asked, rounded up to whole batches)"
    saved = json.loads((tmp_path / "CartPole-v1__clip__s0" / "config.json").read_text())
    assert saved["total_steps"] == 1000 and saved["steps_run"] == 1024
    assert "last-100 training return" in out[-1]


def test_atari_budget_line_counts_frames():
    cfg = prepare(config.atari())     # the paper's 40M frames, as typed
    assert cfg.num_updates == 9766 and cfg.steps_run == 10_000_384
    assert budget_line(cfg) == ("ALE/Pong-v5: 10,000,384 agent steps (40,001,536 frames) = 9,766 updates of 8 envs x "
                                 "128 steps (10,000,000 asked, rounded up to whole batches)")
    assert prepare(config.mujoco()).steps_run == 1_001_472   # Table 3's 1M steps: 489 batches of 2048


def test_unknown_atari_game_suggests(capsys, no_envs, tmp_path):
    line = one_line_error(capsys, config.atari, ["--env-id", "ALE/Pongg-v5", "--run-dir", str(tmp_path)],
                          atari_only=True)
    assert "ALE/Pong-v5" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_run_dir_nonroot(capsys, no_envs, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert "is not writable" in one_line_error(capsys, config.classic, ["--run-dir", str(ro / "x")])


def test_unwritable_run_dir(capsys, no_envs, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    line = one_line_error(capsys, config.classic, ["--run-dir", str(blocker / "runs")])
    assert "run_dir=" in line and "is not writable" in line


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_asked_without_cuda(capsys, no_envs, tmp_path):
    line = one_line_error(capsys, config.classic, ["--device", "cuda", "--run-dir", str(tmp_path)])
    assert "device='cuda' was asked for but no CUDA device exists" in line


def test_resume_of_a_non_run_dir(capsys, no_envs, tmp_path):
    assert "not a run directory" in one_line_error(capsys, config.classic, ["--resume", str(tmp_path)])


def _help(recipe: str) -> str:
    return subprocess.run([sys.executable, str(ROOT / "recipes" / recipe), "--help"],
                          capture_output=True, text=True, check=True).stdout


def test_help_lists_every_option_with_default():
    """Every option with its default; the Atari-only options only in the Atari recipe."""
    out = _help("mujoco.py")
    flat = " ".join(out.split())
    for f in dataclasses.fields(config.Config):
        flag = "--" + f.name.replace("_", "-") + " "
        assert (flag in out) != f.metadata["atari"], flag
    assert "(default: Hopper-v5)" in flat and "(default: 2048)" in flat and "(default: 0.0003)" in flat
    assert "(default: )" not in flat and "--name" in flat
    atari = " ".join(_help("atari.py").split())
    for f in dataclasses.fields(config.Config):
        assert "--" + f.name.replace("_", "-") + " " in atari, f.name
    assert "--frame-skip INT[,...] Atari: frames per agent step, max-pooled over the last 2 (default: 4)" in atari


def test_recipe_exit_code_2_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--gamma", "2",
                        "--run-dir", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == "error: gamma=2.0 must be in [0, 1]"


BENCH_CASES = [
    (["--repeat", "0"], "--repeat 0: must be >= 1"),
    (["--envs", "pongg"], "--envs: unknown pongg; allowed: cartpole"),
    (["--steps", "hopper:100"], "--steps 'hopper:100': expected key=int pairs"),
    (["--repeat", "x"], "argument --repeat: invalid int value: 'x'"),
    (["--peer-dirr", "x"], "unrecognized arguments: --peer-dirr"),
]


@pytest.mark.parametrize("argv,needle", BENCH_CASES, ids=[c[1][:24] for c in BENCH_CASES])
def test_bench_refuses_bad_input_in_one_line(capsys, argv, needle):
    """``python -m ppo_pipeline.bench``'s refusals are one line too (no usage dump), before anything runs."""
    from ppo_pipeline.tools import bench

    assert needle in refusal(capsys, lambda: bench.main(argv))
