"""The envpool backend against the gymnasium backend: the Atari details, the SAME_STEP contract, a run.

Real envs, no mocks. Both backends are held to the same details (parametrized over ``BACKENDS``); the
strongest check, :func:`test_backends_step_for_step_identical`, runs both with one no-op at reset and the
same random actions and compares every output.
"""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.algo.evaluation import random_score
from ppo_pipeline.envs import envpool as envpool_backend
from ppo_pipeline.envs import gymnasium as gymnasium_backend
from ppo_pipeline.envs import seeds
from ppo_pipeline.errors import ConfigError

BACKENDS = {"gymnasium": gymnasium_backend.make_vector_env, "envpool": envpool_backend.make_vector_env}
BREAKOUT_LIVES = 5


def atari_cfg(tmp_path: Path, backend: str, env_id: str = "ALE/Breakout-v5", **kw) -> config.Config:
    """A resolved Atari config; gymnasium envs in one process (2-core machines)."""
    return tiny(config.atari, tmp_path, env_id=env_id, num_envs=2, vector_env="sync", env_backend=backend, **kw)


def make(backend: str, cfg: config.Config, n: int, *, evaluation: bool = False) -> gym.vector.VectorEnv:
    return BACKENDS[backend](cfg, n, evaluation=evaluation)


def random_steps(envs: gym.vector.VectorEnv, seeds: list[int], steps: int, rng_seed: int = 0):
    """Reset with ``seeds``, then yield ``(actions, step)`` for ``steps`` uniform random vector steps."""
    envs.reset(seed=seeds)
    rng = np.random.default_rng(rng_seed)
    for _ in range(steps):
        actions = rng.integers(envs.single_action_space.n, size=envs.num_envs)
        yield actions, envs.step(actions)


def games(info: dict) -> list[tuple[int, float, int]]:
    """(env, r, l) of the real games that ended in this step."""
    final = info.get("final_info") or {}
    if "episode" not in final:
        return []
    return [(int(i), float(final["episode"]["r"][i]), int(final["episode"]["l"][i]))
            for i in np.flatnonzero(final["_episode"])]


# ------------------------------------------------------------------------------------------------------
# ids and config checks
# ------------------------------------------------------------------------------------------------------
def test_supported_ids():
    assert envpool_backend.task_id("ALE/Pong-v5") == "Pong-v5"
    assert envpool_backend.task_id("ALE/TicTacToe3D-v5") == "TicTacToe3d-v5"   # envpool spells it differently
    assert envpool_backend.supports("CartPole-v1") and envpool_backend.supports("Hopper-v5")
    for env_id in ("PongNoFrameskip-v4", "Hopper-v3", "LunarLander-v3", "phys2d/CartPole-v1", "NoSuchEnv-v0"):
        assert not envpool_backend.supports(env_id), env_id


@pytest.mark.parametrize("overrides,needle", [
    ({"env_id": "PongNoFrameskip-v4"}, "'PongNoFrameskip-v4' has no envpool version"),
    ({"noop_max": 0}, "noop_max=0"),
], ids=["v4-id", "no-noop"])
def test_check_rejects_in_one_line(tmp_path, overrides, needle):
    cfg = config.Config.from_dict({**atari_cfg(tmp_path, "envpool").to_dict(), **overrides})
    with pytest.raises(ConfigError) as err:
        envpool_backend.check(cfg)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and "use " in msg
    with pytest.raises(ConfigError):
        envpool_backend.make_vector_env(cfg, 1)


def test_render_falls_back_to_gymnasium(tmp_path):
    envs = envpool_backend.make_vector_env(atari_cfg(tmp_path, "envpool"), 1, render=True)
    try:
        assert isinstance(envs, (gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv))
    finally:
        envs.close()


# ------------------------------------------------------------------------------------------------------
# Both backends, held to the same Atari details
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_spaces_and_observations(tmp_path, backend):
    cfg = atari_cfg(tmp_path, backend, env_id="ALE/Pong-v5")
    envs = make(backend, cfg, 2)
    try:
        assert envs.num_envs == 2
        assert envs.single_observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
        assert envs.single_action_space == gym.spaces.Discrete(6)          # Pong's minimal action set
        envs.action_space.seed(0)
        actions = envs.action_space.sample()
        assert actions.shape == (2,) and ((0 <= actions) & (actions < 6)).all()
        obs, _ = envs.reset(seed=seeds.env_seeds(0, 2))
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert (obs[:, 0] == obs[:, 3]).all()                               # stack filled with the first frame
        obs, reward, term, trunc, _ = envs.step(actions)
        assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
        assert reward.shape == (2,) and np.issubdtype(reward.dtype, np.floating)
        assert term.dtype == bool and trunc.dtype == bool
    finally:
        envs.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_training_life_loss_and_whole_game_statistics(tmp_path, backend):
    """Training envs: rewards in {-1, 0, 1}; each lost life terminates the training episode while the game
    goes on (no statistics entry, lives left); a game's statistics entry comes after all 5 lives, with the
    raw score of the whole game (>= its clipped score) and its length; final_obs for every ended env."""
    envs = make(backend, atari_cfg(tmp_path, backend), 2)
    life_losses = np.zeros(2, dtype=int)
    clipped = np.zeros(2)
    steps = np.zeros(2, dtype=int)
    finished = []
    try:
        for _, (obs, reward, term, trunc, info) in random_steps(envs, seeds.env_seeds(0, 2), 700):
            assert set(np.unique(reward)) <= {-1.0, 0.0, 1.0}
            clipped += reward
            steps += 1
            ended = term | trunc
            for i in np.flatnonzero(ended):
                assert info["final_obs"][i].shape == (4, 84, 84) and info["final_obs"][i].dtype == np.uint8
            over = {i: (r, length) for i, r, length in games(info)}
            for i in np.flatnonzero(term):
                if i in over:                     # game over: every life was lost before
                    r, length = over[i]
                    assert life_losses[i] == BREAKOUT_LIVES - 1
                    assert r >= clipped[i] and length >= steps[i]
                    finished.append(r)
                    life_losses[i], clipped[i], steps[i] = 0, 0.0, 0
                else:                             # a lost life: the game goes on
                    assert info["lives"][i] == BREAKOUT_LIVES - 1 - life_losses[i]
                    life_losses[i] += 1
            assert set(over) <= set(np.flatnonzero(term))
    finally:
        envs.close()
    assert len(finished) >= 2, "random Breakout games take < 350 steps; some must have ended"


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluation_envs_play_whole_games_with_raw_rewards(tmp_path, backend):
    envs = make(backend, atari_cfg(tmp_path, backend), 2, evaluation=True)
    raw = np.zeros(2)
    finished = 0
    try:
        for _, (obs, reward, term, trunc, info) in random_steps(envs, seeds.env_seeds(0, 2, evaluation=True), 700):
            raw += reward
            over = {i: r for i, r, _ in games(info)}
            assert set(np.flatnonzero(term)) == set(over), "a termination is a game over, never a lost life"
            for i, r in over.items():
                assert r == raw[i]                # the statistics' score is the sum of the rewards given
                raw[i] = 0.0
                finished += 1
    finally:
        envs.close()
    assert finished >= 2


def test_backends_step_for_step_identical(tmp_path):
    """One no-op at reset and the same actions: both backends give the same observations, rewards,
    terminated/truncated flags and episode statistics. Only the final observation of a game over may
    differ (gymnasium max-pools stale frames there; unused, as terminated is never bootstrapped)."""
    cfg = atari_cfg(tmp_path, "gymnasium", noop_max=1)
    env_seed_list = seeds.env_seeds(0, 2)
    envs = {b: make(b, cfg, 2) for b in BACKENDS}
    runs = {b: random_steps(envs[b], env_seed_list, 600, rng_seed=3) for b in BACKENDS}
    stats: dict[str, list] = {b: [] for b in BACKENDS}
    life_losses = 0
    try:
        for (_, g), (_, p) in zip(runs["gymnasium"], runs["envpool"]):
            for name, x, y in zip(("obs", "reward", "terminated", "truncated"), g[:4], p[:4]):
                np.testing.assert_array_equal(x, y, err_msg=name)
            for i in np.flatnonzero(g[2] & (g[4]["lives"] > 0)):   # a lost life: final obs identical too
                np.testing.assert_array_equal(g[4]["final_obs"][i], p[4]["final_obs"][i])
                life_losses += 1
            stats["gymnasium"] += games(g[4])
            stats["envpool"] += games(p[4])
    finally:
        for e in envs.values():
            e.close()
    assert stats["gymnasium"] == stats["envpool"]
    assert len(stats["envpool"]) >= 2 and life_losses >= 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_random_pong_scores_about_minus_20(tmp_path, backend):
    """Uniform random Pong loses nearly every point: about -20.5 per game on either backend."""
    cfg = tiny(config.atari, tmp_path, num_envs=4, vector_env="sync", env_backend=backend)
    score = random_score(cfg, seed=0, episodes=4)
    assert -21.0 <= score <= -19.0, score


# ------------------------------------------------------------------------------------------------------
# envpool specifics: time limit, seeding
# ------------------------------------------------------------------------------------------------------
def test_time_limit_truncates_with_final_obs_and_statistics(tmp_path):
    cfg = atari_cfg(tmp_path, "envpool")
    assert envpool_backend.atari_options(cfg)["max_episode_steps"] == 27_000     # 108,000 frames / 4
    envs = envpool_backend.AtariVectorEnv(cfg, 2, max_episode_steps=40)
    try:
        envs.reset(seed=seeds.env_seeds(0, 2))
        truncated_at = None
        for t in range(60):
            obs, _, term, trunc, info = envs.step(np.zeros(2, dtype=np.int64))   # NOOP: lose lives slowly
            if trunc.any():
                truncated_at = t
                assert trunc.all() and not term.any()
                for i in range(2):
                    assert info["final_obs"][i].shape == (4, 84, 84)
                    assert not np.array_equal(info["final_obs"][i], obs[i])      # obs is the new game's
                assert info["final_info"]["_episode"].all()
                np.testing.assert_array_equal(info["final_info"]["episode"]["l"], [40, 40])   # env steps
                break
    finally:
        envs.close()
    assert truncated_at is not None


def test_seeded_reset_replays_and_seeds_separate_runs(tmp_path):
    cfg = atari_cfg(tmp_path, "envpool")

    def trajectory(envs, seed: int) -> np.ndarray:
        return np.stack([s[0] for _, s in random_steps(envs, seeds.env_seeds(seed, 2), 60)])

    envs = envpool_backend.make_vector_env(cfg, 2)
    try:
        first = trajectory(envs, 0)
        np.testing.assert_array_equal(first, trajectory(envs, 0))       # reset(seed=...) reseeds
        assert not np.array_equal(first, trajectory(envs, 1))           # another run seed, other games
        assert envs.seeds == seeds.env_seeds(1, 2)                     # env i gets the config's seed i
    finally:
        envs.close()


# ------------------------------------------------------------------------------------------------------
# Classic control and MuJoCo (same ids and versions as gymnasium)
# ------------------------------------------------------------------------------------------------------
def test_cartpole_time_limit_gives_final_obs(tmp_path):
    """A balancing controller reaches CartPole-v1's 500-step limit: truncated (not terminated), final_obs
    for the bootstrap, statistics r = l = 500, and the returned obs is the next episode's first."""
    cfg = tiny(config.classic, tmp_path, num_envs=2, env_backend="envpool")
    envs = envpool_backend.make_vector_env(cfg, 2)
    try:
        assert envs.single_observation_space.shape == (4,) and envs.single_action_space == gym.spaces.Discrete(2)
        obs, _ = envs.reset(seed=seeds.env_seeds(0, 2))
        for t in range(1, 501):
            actions = (obs[:, 2] + 0.5 * obs[:, 3] + 0.1 * obs[:, 1] > 0).astype(np.int64)
            obs, _, term, trunc, info = envs.step(actions)
            if (term | trunc).any():
                break
        assert t == 500 and trunc.all() and not term.any()
        assert all(final.shape == (4,) for final in info["final_obs"])
        assert np.abs(obs).max() <= 0.05                                # reset state: all in +-0.05
        assert games(info) == [(0, 500.0, 500), (1, 500.0, 500)]
    finally:
        envs.close()


def test_hopper_random_episodes_match_gymnasium(tmp_path):
    """Hopper-v5 (envpool's port, same version): random-policy episodes as long as gymnasium's.

    Random Hopper falls after about 22 steps on either backend; 200 episodes give a standard error of
    about 0.8 steps per backend, so 3 steps apart is a real difference."""
    lengths = {}
    for backend in BACKENDS:
        cfg = tiny(config.mujoco, tmp_path, num_envs=8, env_backend=backend)
        envs = BACKENDS[backend](cfg, 8)
        done: list[int] = []
        envs.action_space.seed(0)
        try:
            envs.reset(seed=seeds.env_seeds(0, 8))
            while len(done) < 200:
                *_, info = envs.step(envs.action_space.sample())
                done += [length for _, _, length in games(info)]
        finally:
            envs.close()
        lengths[backend] = float(np.mean(done[:200]))
    assert all(15 <= m <= 30 for m in lengths.values()), lengths
    assert abs(lengths["envpool"] - lengths["gymnasium"]) <= 3, lengths


# The Atari recipe end to end on envpool (its default backend): tests/test_trainer.py.
