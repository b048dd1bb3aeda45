"""Videos of evaluation episodes (``--capture-video``, ppo_pipeline.run.video) and W&B tracking
(``--track``, ppo_pipeline.run.tracking, offline), each with its one-line refusals."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import ROOT, TINY_ARGS, one_line_error, subprocess_env


@pytest.mark.slow
def test_capture_video_and_track_offline(tmp_path):
    """Each periodic evaluation records its first episode (MP4 in <run>/videos/, a GIF in TensorBoard);
    --track logs the config, every metrics column and the videos to W&B (offline: on disk)."""
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), *TINY_ARGS, "--capture-video", "--track",
                        "--wandb-project", "ppo-test", "--run-dir", str(tmp_path)],
                       capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    run = tmp_path / "CartPole-v1__clip__s0"
    videos = sorted((run / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["update-00000004.mp4", "update-00000008.mp4"]   # 8 updates, eval every 4
    import imageio.v3 as iio

    assert iio.imread(videos[0]).shape[0] >= 8                        # frames of a CartPole episode
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run / "tb"), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    assert "eval/video" in acc.Tags()["images"]
    offline = list((run / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1
    data = offline[0].read_bytes()
    for column in ("policy_loss", "value_loss", "explained_variance", "return_mean_100", "sps", "eval_return_mean"):
        assert column.encode() in data, column
    assert list((run / "wandb").glob("offline-run-*/files/media/videos/eval/*.mp4"))



def test_track_without_wandb_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert "pip install -e .[wandb]" in one_line_error(["--track", "--run-dir", str(tmp_path)], capsys)



def test_capture_video_needs_evaluation(tmp_path, capsys):
    assert "needs eval_episodes >= 1" in one_line_error(["--capture-video", "--eval-episodes", "0", "--run-dir", str(tmp_path)],
                                                capsys)



def test_renderability_is_checked_once_per_env_stack(monkeypatch, tmp_path):
    """A sweep with --capture-video builds one env per env id to check rendering, not one per variant."""
    from helpers import tiny

    from ppo_pipeline import envs

    built = []
    real = envs.make_vector_env
    monkeypatch.setattr(envs, "_RENDERABLE", set())
    monkeypatch.setattr(envs, "make_vector_env", lambda cfg, *a, **k: built.append(cfg.env_id) or real(cfg, *a, **k))
    for lr, seed in [(1e-3, 0), (3e-4, 1), (1e-4, 2)]:
        envs.check_renderable(tiny(tmp=tmp_path, lr=lr, seed=seed))
    envs.check_renderable(tiny(tmp=tmp_path, env_id="Acrobot-v1"))
    assert built == ["CartPole-v1", "Acrobot-v1"]
