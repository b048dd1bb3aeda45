"""The env stacks (ppo_pipeline.envs): the Atari details of the gymnasium backend, on the real ALE."""

from __future__ import annotations

import numpy as np
from helpers import tiny

from ppo_pipeline import config, envs


def test_atari_stack_observation_and_details(tmp_path):
    cfg = tiny(config.atari, tmp_path, num_envs=1)
    env = envs.gymnasium.env_factory(cfg)()
    obs, _ = env.reset(seed=1)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    # wrapper chain: frame stack > clip reward > fire reset > episodic life > stats > preprocessing
    chain, e = [], env
    while hasattr(e, "env"):
        chain.append(type(e).__name__)
        e = e.env
    assert chain[:6] == ["FrameStackObservation", "ClipRewardSign", "FireReset", "EpisodicLife",
                         "RecordEpisodeStatistics", "AtariPreprocessing"], chain
    pre = env.get_wrapper_attr("noop_max")
    assert pre == 30 and env.get_wrapper_attr("frame_skip") == 4
    assert env.unwrapped.get_action_meanings()[1] == "FIRE"
    rewards = set()
    for _ in range(400):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        rewards.add(r)
        if term or trunc:
            break
    assert rewards <= {-1.0, 0.0, 1.0}
    ev = envs.gymnasium.env_factory(cfg, evaluation=True)()
    names = []
    while hasattr(ev, "env"):
        names.append(type(ev).__name__)
        ev = ev.env
    assert "EpisodicLife" not in names and "ClipRewardSign" not in names



def test_episodic_life_ends_training_episode_but_not_game(tmp_path):
    cfg = tiny(config.atari, tmp_path, env_id="ALE/Breakout-v5", num_envs=1)
    env = envs.gymnasium.env_factory(cfg)()
    env.reset(seed=3)
    life_losses = 0
    for _ in range(3000):
        _, _, term, trunc, info = env.step(env.action_space.sample())
        if term:
            lives = env.unwrapped.ale.lives()
            if lives > 0:  # a life lost: training episode over, game goes on
                life_losses += 1
                assert "episode" not in info
                env.reset()
                assert env.unwrapped.ale.lives() == lives
            else:
                assert "episode" in info  # real game over: stats recorded
                break
    assert life_losses >= 1
