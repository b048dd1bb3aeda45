"""``python -m ppo_pipeline.play`` and :mod:`ppo_pipeline.run.video` on tiny real runs.

* play prints a line per episode and the summary line, and its episodes are the trainer's evaluation
  episodes (same seeds, same frozen statistics): its returns equal :func:`evaluate`'s;
* the checkpoint's observation statistics are what play uses: a copy of the checkpoint whose statistics
  were shifted plays other returns, exactly those :func:`evaluate` gets with the shifted statistics;
* ``--video`` writes MP4s that imageio reads back with one frame per agent step (Atari: the RGB screen);
* the TensorBoard clip is a GIF image summary that TensorBoard's own reader finds in the event file;
* bad input: one ``error:`` line and exit code 2; Ctrl-C: one line and exit code 130.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import replace, tiny

from ppo_pipeline import config
from ppo_pipeline.algo.evaluation import evaluate
from ppo_pipeline.algo.normalize import ObsNormalizer
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.envs import make_vector_env
from ppo_pipeline.run import checkpoint, video
from ppo_pipeline.run.trainer import Trainer
from ppo_pipeline.tools import play

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}   # tiny nets: one thread is fastest on a shared machine
SUMMARY = re.compile(r"^mean return (-?\d+\.\d\d) ± (\d+\.\d\d) over (\d+) episodes? \(length (\d+\.\d) ± (\d+\.\d)\)$")
EPISODE = re.compile(r"^episode (\d+)/(\d+) \(seed (\d+)\): return (-?\d+\.\d\d), length (\d+)")


def train(cfg: config.Config) -> config.Config:
    Trainer(cfg).train()
    return cfg


def run_play(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ppo_pipeline.play", *map(str, args)], capture_output=True,
                          text=True, env=ENV, timeout=timeout)


def parse(stdout: str) -> tuple[list[tuple[float, int]], re.Match]:
    """(per-episode (return, length), the summary match) of play's output."""
    lines = stdout.strip().splitlines()
    episodes = [(float(m.group(4)), int(m.group(5))) for m in map(EPISODE.match, lines) if m]
    summary = SUMMARY.match(lines[-1])
    assert summary, lines[-1]
    return episodes, summary


def trained_agent(cfg: config.Config, state: dict) -> tuple[Agent, ObsNormalizer | None]:
    envs = make_vector_env(cfg, 1, evaluation=True)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    envs.close()
    agent = Agent(obs_space, act_space, cfg)
    agent.load_state_dict(state["agent"])
    norm = None
    if cfg.normalize_obs:
        norm = ObsNormalizer(obs_space.shape, cfg.clip_obs)
        norm.load_state_dict(state["obs_norm"])
    return agent, norm


@pytest.fixture(scope="module")
def pendulum(tmp_path_factory) -> config.Config:
    """Pendulum-v1 with normalized observations: real-valued returns, 200-step episodes."""
    tmp = tmp_path_factory.mktemp("play-pendulum")
    return train(tiny(config.mujoco, tmp, name="pendulum", env_id="Pendulum-v1", num_steps=256,
                      eval_episodes=1, torch_threads=1))


@pytest.fixture(scope="module")
def pong(tmp_path_factory) -> config.Config:
    tmp = tmp_path_factory.mktemp("play-pong")
    return train(tiny(config.atari, tmp, name="pong", num_envs=1, num_steps=32, minibatch_size=32, epochs=1,
                      eval_episodes=0, vector_env="sync", torch_threads=1))


# ------------------------------------------------------------------------------------------------------
# Playing
# ------------------------------------------------------------------------------------------------------
def test_play_prints_episodes_and_summary_equal_to_evaluation(pendulum):
    res = run_play(pendulum.run_path(), "--episodes", 3, "--device", "cpu")
    assert res.returncode == 0, res.stderr
    episodes, summary = parse(res.stdout)
    assert int(summary.group(3)) == 3
    assert [length for _, length in episodes] == [200, 200, 200]
    returns = [r for r, _ in episodes]
    assert float(summary.group(1)) == pytest.approx(np.mean(returns), abs=0.01)
    assert float(summary.group(2)) == pytest.approx(np.std(returns), abs=0.01)
    # the trainer's own evaluation of the same checkpoint (same seeds, frozen statistics)
    state = checkpoint.load(checkpoint.latest(pendulum.run_path()))
    agent, norm = trained_agent(pendulum, state)
    assert returns == pytest.approx(evaluate(agent, pendulum, norm, 3)[0], abs=0.011)


@pytest.mark.slow
def test_play_uses_the_checkpoints_frozen_statistics(pendulum, tmp_path):
    path = checkpoint.latest(pendulum.run_path())
    state = checkpoint.load(path)
    agent, norm = trained_agent(pendulum, state)
    shifted = {**state["obs_norm"], "mean": state["obs_norm"]["mean"] + 2.0 * np.sqrt(state["obs_norm"]["var"])}
    torch.save({**state, "obs_norm": shifted}, tmp_path / "shifted.pt")

    base = parse(run_play(pendulum.run_path(), "--episodes", 2).stdout)[0]
    moved = parse(run_play(pendulum.run_path(), "--episodes", 2, "--checkpoint", tmp_path / "shifted.pt").stdout)[0]
    assert [r for r, _ in base] == pytest.approx(evaluate(agent, pendulum, norm, 2)[0], abs=0.011)
    norm.load_state_dict(shifted)
    assert [r for r, _ in moved] == pytest.approx(evaluate(agent, pendulum, norm, 2)[0], abs=0.011)
    assert max(abs(a[0] - b[0]) for a, b in zip(base, moved)) > 1.0


@pytest.mark.slow
def test_stochastic_play_samples(pendulum):
    deterministic = parse(run_play(pendulum.run_path(), "--episodes", 1).stdout)[0]
    res = run_play(pendulum.run_path(), "--episodes", 1, "--stochastic")
    assert res.returncode == 0 and "stochastic policy" in res.stdout
    assert parse(res.stdout)[0][0][0] != deterministic[0][0]


# ------------------------------------------------------------------------------------------------------
# Videos
# ------------------------------------------------------------------------------------------------------
def read_frames(path: Path) -> list[np.ndarray]:
    import imageio.v3 as iio

    return list(iio.imiter(path, plugin="FFMPEG"))


@pytest.mark.slow
def test_atari_video_is_the_rgb_game_screen(pong, tmp_path):
    res = run_play(pong.run_path(), "--episodes", 2, "--max-steps", 12, "--video", tmp_path / "videos")
    assert res.returncode == 0, res.stderr
    episodes, _ = parse(res.stdout)
    assert episodes == [(pytest.approx(episodes[0][0]), 12)] * 2
    assert "stopped at --max-steps" in res.stdout
    for i in range(2):
        path = tmp_path / "videos" / f"episode-{i:03d}.mp4"
        assert path.stat().st_size > 0
        frames = read_frames(path)
        assert len(frames) == 12
        assert frames[0].shape == (210, 160, 3)      # ALE's screen, not the 84x84 grayscale input
        assert frames[0].std() > 0


def _mujoco_renders() -> bool:
    probe = ("import os, gymnasium as gym; os.environ.setdefault('MUJOCO_GL', 'egl'); "
             "e = gym.make('InvertedPendulum-v5', render_mode='rgb_array'); e.reset(seed=0); e.render()")
    env = {k: v for k, v in ENV.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env, timeout=60).returncode == 0


@pytest.mark.slow
def test_mujoco_video_has_a_frame_per_step(tmp_path):
    if not _mujoco_renders():
        pytest.skip("no offscreen OpenGL (EGL) for MuJoCo on this machine")
    cfg = train(tiny(config.mujoco, tmp_path, name="ip", env_id="InvertedPendulum-v5", num_steps=256,
                     eval_episodes=1, torch_threads=1))
    res = run_play(cfg.run_path(), "--episodes", 2, "--video", tmp_path / "v")
    assert res.returncode == 0, res.stderr
    episodes, _ = parse(res.stdout)
    for i, (_, length) in enumerate(episodes):
        frames = read_frames(tmp_path / "v" / f"episode-{i:03d}.mp4")
        assert len(frames) == length and frames[0].shape == (480, 480, 3)


def test_record_evaluation_video_writes_mp4_and_tensorboard(pong, tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing import event_accumulator
    from torch.utils.tensorboard import SummaryWriter

    state = checkpoint.load(checkpoint.latest(pong.run_path()))
    agent, norm = trained_agent(pong, state)
    writer = SummaryWriter(str(tmp_path / "tb"))
    cfg = replace(pong, eval_max_steps=10)
    ep = video.record_evaluation_video(cfg, agent, norm, tmp_path / "videos" / "update-2.mp4", writer=writer, step=2)
    writer.close()
    assert ep.length == 10 and ep.truncated_by_cap and len(ep.frames) == 10
    assert len(read_frames(tmp_path / "videos" / "update-2.mp4")) == 10

    acc = event_accumulator.EventAccumulator(str(tmp_path / "tb"), size_guidance={event_accumulator.IMAGES: 0})
    acc.Reload()
    assert "eval/video" in acc.Tags()["images"]
    (event,) = acc.Images("eval/video")
    assert event.step == 2 and (event.height, event.width) == (210, 160)
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.format == "GIF"
    # 15 fps: every frame kept, 70 ms each (GIF counts centiseconds); Pillow merges identical neighbours
    # into one longer frame, so the total time is what is fixed
    total_ms = 0
    for i in range(gif.n_frames):
        gif.seek(i)
        total_ms += gif.info["duration"]
    assert total_ms == 10 * 70


def test_write_mp4_and_gif_helpers(tmp_path):
    frames = [np.full((33, 21, 3), 8 * i, dtype=np.uint8) for i in range(9)]   # odd size: padded, not scaled
    out = video.write_mp4(tmp_path / "sub" / "clip.mp4", frames, fps=30)
    back = read_frames(out)
    assert len(back) == 9 and back[0].shape == (34, 22, 3)
    big = [np.zeros((480, 480, 3), dtype=np.uint8)] * 250                     # 2 s at 125 fps (Hopper)
    gif, h, w = video.encode_gif(big, fps=125)
    assert gif.startswith(b"GIF89a") and (h, w) == (240, 240)
    with pytest.raises(video.VideoError):
        video.write_mp4(tmp_path / "empty.mp4", [], fps=30)


def test_video_of_an_env_that_cannot_render_is_one_error_line(tmp_path, capsys, monkeypatch):
    cfg = train(tiny(config.classic, tmp_path, name="cartpole", eval_episodes=0, torch_threads=1))
    monkeypatch.setattr(video, "render_frame", _fails_to_render)
    with pytest.raises(SystemExit) as exc:
        play.main([str(cfg.run_path()), "--episodes", "1", "--video", str(tmp_path / "v")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: CartPole-v1 cannot render")


def _fails_to_render(envs):
    raise video.VideoError("CartPole-v1 cannot render frames here (DependencyNotInstalled: pygame)")


# ------------------------------------------------------------------------------------------------------
# Bad input and Ctrl-C
# ------------------------------------------------------------------------------------------------------
def one_error_line(capsys, argv: list) -> str:
    with pytest.raises(SystemExit) as exc:
        play.main([str(a) for a in argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_bad_input_is_one_line(pendulum, pong, tmp_path, capsys):
    run = pendulum.run_path()
    assert "RUN_DIR" in one_error_line(capsys, [])
    assert "'/no/such/run' does not exist" in one_error_line(capsys, ["/no/such/run"])
    assert "no config.json" in one_error_line(capsys, [tmp_path])
    assert "--episodes: 0 must be >= 1" in one_error_line(capsys, [run, "--episodes", 0])
    assert "'ten' is not an integer" in one_error_line(capsys, [run, "--episodes", "ten"])
    assert "--max-steps: -5 must be >= 1" in one_error_line(capsys, [run, "--max-steps=-5"])
    assert "device='tpu'" in one_error_line(capsys, [run, "--device", "tpu"])

    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(run / "config.json", empty / "config.json")
    assert "no checkpoint-*.pt" in one_error_line(capsys, [empty])

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 100)
    assert "junk.pt' is corrupt" in one_error_line(capsys, [run, "--checkpoint", junk])
    assert "does not exist" in one_error_line(capsys, [run, "--checkpoint", tmp_path / "missing.pt"])
    foreign = checkpoint.latest(pong.run_path())
    assert "belongs to another run (env_id='ALE/Pong-v5'" in one_error_line(capsys, [run, "--checkpoint", foreign])

    state = checkpoint.load(checkpoint.latest(run))
    torch.save({**state, "obs_norm": None}, tmp_path / "nostats.pt")
    assert "no observation-normalization statistics" in one_error_line(capsys, [run, "--checkpoint",
                                                                               tmp_path / "nostats.pt"])
    (tmp_path / "afile").write_text("")
    assert "--video" in one_error_line(capsys, [run, "--video", tmp_path / "afile" / "v"])


def test_corrupt_checkpoint_in_a_real_process_has_no_traceback(pendulum, tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"garbage")
    res = run_play(pendulum.run_path(), "--checkpoint", tmp_path / "bad.pt")
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr.splitlines() == [f"error: checkpoint {str(tmp_path / 'bad.pt')!r} is corrupt or unreadable "
                                       f"(UnpicklingError)"]


def test_ctrl_c_is_one_line_and_exit_130(pendulum):
    proc = subprocess.Popen([sys.executable, "-m", "ppo_pipeline.play", str(pendulum.run_path()),
                             "--episodes", "1000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            # a test run started in the background (`cmd &`) inherits SIGINT ignored: undo that
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        first = proc.stdout.readline()          # the header: the policy is loaded, episodes start
        assert first.startswith("playing Pendulum-v1"), first
        proc.stdout.readline()                  # episode 1 finished: well inside the loop
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert err.splitlines() == ["interrupted: play stopped by Ctrl-C"]


def test_help_lists_every_option_with_its_default(capsys):
    from ppo_pipeline.tools import export

    for main, options in ((play.main, ("--checkpoint", "--episodes", "--stochastic", "--video", "--fps", "--device",
                                       "--max-steps")),
                          (export.main, ("--out", "--checkpoint", "--format"))):
        with pytest.raises(SystemExit) as exc:
            main(["--help"])
        assert exc.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        for opt in options:
            assert opt in text
        assert text.count("(default:") + text.count("(required)") >= len(options)
