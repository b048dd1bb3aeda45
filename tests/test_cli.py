"""Bad input: one clear line on stderr, exit code 2, before any environment starts. And --help."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ppo_pipeline import config, envs, launch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_envs(monkeypatch):
    """Fail the test if anything tries to build an environment."""
    def boom(*a, **k):
        raise AssertionError("an environment was created before the input was validated")

    monkeypatch.setattr(envs, "make_vector_env", boom)
    monkeypatch.setattr("ppo_pipeline.trainer.make_vector_env", boom)


def one_line_error(capsys, preset, argv, *, atari_only=False) -> str:
    with pytest.raises(SystemExit) as exc:
        launch.main(preset, "test", argv, atari_only=atari_only)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


CASES = [
    (["--env-id", "CartPol-v1"], "'CartPol-v1' is not a registered", "CartPole-v1"),
    (["--lr", "0"], "lr=0.0 must be > 0", None),
    (["--lr", "-0.001"], "lr=-0.001 must be > 0", None),
    (["--clip-epsilon", "0"], "clip_epsilon=0.0 must be > 0", None),
    (["--gamma", "1.5"], "gamma=1.5 must be in [0, 1]", None),
    (["--gae-lambda", "-0.1"], "gae_lambda=-0.1 must be in [0, 1]", None),
    (["--minibatch-size", "512"], "minibatch_size=512 is larger than the batch", "256"),
    (["--minibatch-size", "100"], "minibatch_size=100 does not divide the batch", "128"),
    (["--total-steps", "1000"], "total_steps=1000", "not a multiple of the batch"),
    (["--objective", "ppo2"], "invalid choice: 'ppo2'", "kl_adaptive"),
    (["--num-envs", "x"], "invalid int value: 'x'", None),
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


def test_atari_frames_not_multiple_of_batch(capsys, no_envs, tmp_path):
    line = one_line_error(capsys, config.atari, ["--total-steps", "1000", "--run-dir", str(tmp_path)],
                          atari_only=True)
    assert "total_steps=1000 agent steps (4000 frames) is not a multiple of the batch" in line
    assert "1024" in line


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


def test_help_lists_every_option_with_default():
    out = subprocess.run([sys.executable, str(ROOT / "recipes" / "mujoco.py"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    flat = " ".join(out.split())
    for f in dataclasses.fields(config.Config):
        flag = "--" + f.name.replace("_", "-")
        assert flag in out, flag
    assert "(default: Hopper-v5)" in flat and "(default: 2048)" in flat and "(default: 0.0003)" in flat


def test_recipe_exit_code_2_in_a_real_process(tmp_path):
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--gamma", "2",
                        "--run-dir", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.strip() == "error: gamma=2.0 must be in [0, 1]"
