"""``play --video`` of a Bullet flag run shows the flag (:class:`ppo_pipeline.envs.gymnasium.FlagInView`).

The env's own camera looks at the robot from 3 m and never turns, so the flag (a red sphere) is out of its
frames; the wrapper's camera looks from the side at the robot (left) and the flag (right).
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import tiny
from test_play import parse, read_frames, run_play, train

from ppo_pipeline import config

pytest.importorskip("pybullet_envs_gymnasium")

TASK = "HumanoidFlagrunBulletEnv-v0"


def flag_red(frame: np.ndarray) -> np.ndarray:
    """Pixels of the flag's red (material 1, 0.2, 0.2, shaded; H.264 blurs the edges)."""
    r, g, b = (frame[..., i].astype(int) for i in range(3))
    return (r > 110) & (g < 80) & (b < 80) & (r - g > 70)


@pytest.fixture(scope="module")
def flagrun(tmp_path_factory) -> config.Config:
    return train(tiny(config.roboschool, tmp_path_factory.mktemp("flagrun"), env_id=TASK, num_envs=2, num_steps=64,
                      minibatch_size=64, total_steps=128, eval_episodes=0, torch_threads=1))


@pytest.mark.slow
def test_flagrun_video_shows_the_flag(flagrun, tmp_path):
    res = run_play(flagrun.run_path(), "--episodes", 1, "--max-steps", 40, "--video", tmp_path / "v")
    assert res.returncode == 0, res.stderr
    [(_, length)], _ = parse(res.stdout)
    frames = read_frames(tmp_path / "v" / "episode-000.mp4")
    assert len(frames) == length > 5 and frames[0].shape == (240, 320, 3)
    right = [int(flag_red(f[:, int(0.6 * f.shape[1]):]).sum()) for f in frames]
    # the flag is in the right 40% of every frame (the env's own camera, centred on the robot, whose thighs are a
    # similar red: 0 such pixels there in every frame of this episode; with the wrapper about 745)
    assert min(right) >= 60, right


@pytest.mark.slow
def test_the_flag_is_drawn_where_the_camera_projects_it(flagrun):
    from ppo_pipeline.envs import make_vector_env
    from ppo_pipeline.envs.gymnasium import FlagInView

    envs = make_vector_env(flagrun, 1, evaluation=True, render=True)
    try:
        wrapper = envs.envs[0]
        while not isinstance(wrapper, FlagInView):
            wrapper = wrapper.env
        envs.reset(seed=[7])
        for _ in range(30):
            frame = envs.render()[0]
            view, proj, w, h = wrapper.camera()
            robot = wrapper.env.unwrapped.robot
            clip = (np.array(proj).reshape(4, 4, order="F") @ np.array(view).reshape(4, 4, order="F")
                    @ np.array([robot.walk_target_x, robot.walk_target_y, 0.7, 1.0]))
            x, y = (clip[0] / clip[3] + 1) / 2 * w, (1 - clip[1] / clip[3]) / 2 * h
            assert w / 2 < x < w and 0 < y < h
            assert flag_red(frame[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3]).all()   # the flag's centre
            envs.step(np.zeros((1, *envs.single_action_space.shape), np.float32))
    finally:
        envs.close()
