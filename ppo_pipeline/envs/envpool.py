"""The envpool backend: envpool's C++ batched envs behind the contract of :mod:`ppo_pipeline.envs`.

envpool steps the envs of a pool in its own C++ threads. Its gymnasium-style API differs from what the
collector needs in two ways: an env that ended is reset on the *next* ``step()`` (NEXT_STEP autoreset;
that call's action is ignored), and seeds are fixed when the pool is made. Here an env that ended is
reset with ``pool.reset(env_ids)`` inside the same ``step()`` (SAME_STEP: its last observation goes to
``info["final_obs"]``, the new episode's first is in ``obs``), and ``reset(seed=[...])`` rebuilds the
pool with those seeds. Every env that envpool considers done is reset by us at once, so envpool's own
autoreset never fires.

Atari, one line per detail (envpool option, or "ours": numpy code in :class:`AtariVectorEnv`):

1. No-op reset: envpool ``noop_max=cfg.noop_max`` (1..noop_max raw no-op frames after a real reset).
2. Frame skip 4, max over the last 2 frames: envpool ``frame_skip=cfg.frame_skip``.
3. Lost life ends the training episode: ours (``info["lives"]`` drops to > 0 -> terminated; envpool
   ``episodic_life=False``).
4. FIRE on reset: ours (agent steps FIRE then 2 after every reset and lost life where action 1 is FIRE;
   envpool ``use_fire_reset=False``).
5. 84x84 grayscale: envpool ``img_height=img_width=84, gray_scale=True, use_inter_area_resize=True``.
6. Stack 4: ours (numpy frame stack filled with the first frame at every reset; envpool ``stack_num=1``).
7. Sign-clipped training reward: ours (``np.sign(info["reward"])``; envpool ``reward_clip=False``).
8. Episode statistics over whole games, raw score: ours (sums of envpool's raw ``info["reward"]``,
   reported when ``info["terminated"]`` (game over) or the time limit ends the game).
9. No sticky actions: envpool ``repeat_action_probability=0.0`` (and ``full_action_space=False``).

Time limit: envpool ``max_episode_steps = 108_000 // cfg.frame_skip`` agent steps (27,000), ALE v5's
108,000-frame limit. ``cfg.eval_max_steps`` is not an env limit on either backend: evaluation stops its
loop there.

Where envpool's own semantics differ from the gymnasium stack, and how the gap is closed:

* envpool's ``episodic_life=True`` re-draws 1..noop_max no-op frames after a lost life, presses one raw
  FIRE frame and keeps the previous life's frames in the stack; ``EpisodicLife`` + ``FireReset`` take
  one no-op agent step, then the agent steps FIRE and 2, and restart the stack. Closed: details 3, 4
  and 6 are ours, reproducing the wrappers step for step.
* envpool's ``use_fire_reset`` replaces the last no-op by one FIRE frame, and applies to every game
  whose action set contains FIRE (ours: only where action 1 is FIRE). Closed by detail 4.
* envpool's ``terminated`` is ``done & ~trunc``, so a game lost on the time limit's last step would read
  as truncated only. Closed for Atari: ``terminated`` is ours, from ``info["terminated"]`` (ALE's game
  over) and the lives.
* ``RecordEpisodeStatistics`` sits below ``FireReset``/``EpisodicLife``, so the gymnasium statistics
  count the reset-time FIRE/no-op steps (length) and their rewards (score). Ours count them too.
* envpool cannot take 0 no-ops (``noop_max=0`` is undefined there). Not closable: :func:`check` rejects
  ``noop_max=0`` on this backend.
* The observation of the step that *ends a game*: gymnasium max-pools stale frames there, envpool takes
  the last frame. Not closed; that observation only reaches ``final_obs`` of a terminated env, which is
  never bootstrapped.
* Random draws (no-op counts, ALE's seed) come from envpool's generators: a seed gives other games than
  on the gymnasium backend, with the same distribution. The time limits may differ by a few agent steps
  (ALE counts the reset no-op frames, envpool does not).

Checked (tests/test_envpool.py): with one no-op at reset and the same actions, both backends give
identical observations, rewards, terminated/truncated flags and episode statistics, lost lives included.

Seeds: envpool >= 1.2 takes one seed per env (``seed=[...]`` at make time). Env i gets exactly
``seeds.env_seeds(cfg.seed, n, evaluation=...)[i]``, the seed it gets on the gymnasium backend, so runs
of different seeds never share env randomness (``env_seeds`` is disjoint across seeds and between
training and evaluation). envpool's seeds are int32: the seeds of run seeds 0..10 000 and every resume seed
fit as they are; a larger run seed's (>= 2^31) are folded into int32 by :func:`.seeds.fit_int32`, still apart
from every small seed's and resume seed.

Non-Atari: ids that envpool registers under the same name *and version* as gymnasium, in the classic
control and MuJoCo families (CartPole-v1, Pendulum-v1, Hopper-v5, ...; never Hopper-v5 for Hopper-v4).
:class:`PlainVectorEnv` adds the SAME_STEP reset, ``final_obs`` (truncations included) and the episode
statistics. Gap not closed: an episode that terminates on the time limit's last step reads as truncated
only (envpool reports no separate termination flag for these envs).

Rendering (``render=True``, for videos): envpool gives the preprocessed frames, not the RGB game screen,
so :func:`make_vector_env` returns the gymnasium backend's vector env instead.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from ..config import Config
from ..errors import ConfigError
from .ids import family, registered
from .seeds import env_seeds, fit_int32

ALE_MAX_FRAMES = 108_000  # ALE v5's max_num_frames_per_episode (30 minutes at 60 Hz)
SCREEN = 84  # side of the preprocessed square frame
NOOP, FIRE, AFTER_FIRE = 0, 1, 2
PLAIN_FAMILIES = ("classic", "mujoco")  # the families (ids.family) whose dynamics envpool ports


# ------------------------------------------------------------------------------------------------------
# Which ids envpool has
# ------------------------------------------------------------------------------------------------------
@functools.cache
def _envpool_ids() -> dict[str, str]:
    """envpool id -> its family's module (``envpool.atari``, ``envpool.classic_control``, ...)."""
    from envpool.registration import registry

    return {task: entry[0] for task, entry in registry.specs.items()}


@functools.cache
def task_id(env_id: str) -> str | None:
    """envpool's id for gymnasium's ``env_id`` (``ALE/Pong-v5`` -> ``Pong-v5``), or None when it has none.

    Atari: ALE v5 ids only (the v5 ALE: minimal action set, 108,000-frame limit), matched case-blind
    (``ALE/TicTacToe3D-v5`` is envpool's ``TicTacToe3d-v5``). Others: the same id in a family whose
    dynamics envpool ports (classic control, MuJoCo), never another version.
    """
    ids = _envpool_ids()
    if env_id.startswith("ALE/") and env_id.endswith("-v5"):
        atari = {t.lower(): t for t, module in ids.items() if module == "envpool.atari"}
        return atari.get(env_id[len("ALE/") :].lower())
    if env_id in ids and family(env_id) in PLAIN_FAMILIES:
        return env_id
    return None


def supports(env_id: str) -> bool:
    """True when the envpool backend can build ``env_id`` (a resolved gymnasium id)."""
    return task_id(env_id) is not None


def check(cfg: Config) -> str:
    """Raise :class:`ConfigError` (one line) when ``cfg`` cannot run on the envpool backend; else envpool's id.

    Run on a resolved config, before anything starts: the env id must have an envpool version,
    Atari's ``noop_max`` must be >= 1. (Every env seed fits envpool's int32, folded where larger: :mod:`.seeds`.)
    """
    task = task_id(cfg.env_id)
    if task is None:
        raise ConfigError(
            f"env_id {cfg.env_id!r} has no envpool version; --env-backend envpool takes ALE/<Game>-v5 Atari "
            f"ids (e.g. ALE/Pong-v5) and the same-version classic-control/MuJoCo ids (e.g. CartPole-v1, "
            f"Hopper-v5); use --env-backend gymnasium"
        )
    if family(cfg.env_id) == "atari" and cfg.noop_max < 1:
        raise ConfigError(
            f"noop_max={cfg.noop_max}: the envpool backend always takes 1..noop_max no-ops; "
            f"use --noop-max >= 1 or --env-backend gymnasium"
        )
    return task


@functools.cache
def needs_fire(env_id: str) -> bool:
    """Whether the game's action 1 is FIRE (the gymnasium stack's rule, asked of the same ROM)."""
    from . import gymnasium as gymnasium_backend

    registered()
    env = gym.make(env_id)
    try:
        return gymnasium_backend.needs_fire(env)
    finally:
        env.close()


# ------------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------------
def seed_list(seed: int | Sequence[int], num_envs: int) -> list[int]:
    """gymnasium's ``reset(seed=...)`` convention: an int s seeds env i with s + i; a list gives each its own.
    Seeds above int32 (a large run seed's) are folded into envpool's int32 (:func:`.seeds.fit_int32`)."""
    seeds = [int(s) for s in seed] if isinstance(seed, Iterable) else [int(seed) + i for i in range(num_envs)]
    if len(seeds) != num_envs:
        raise ValueError(f"{len(seeds)} seeds for {num_envs} envs")
    if min(seeds) < 0:
        raise ConfigError(f"env seeds {min(seeds)}..{max(seeds)} must be >= 0")
    return fit_int32(seeds)


def final_obs(obs: np.ndarray, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``info["final_obs"]`` and its mask as gymnasium's SAME_STEP vector envs give them: an object array
    holding a copy of each ended env's last observation (None elsewhere)."""
    out = np.full(len(ended), None, dtype=object)
    for i in np.flatnonzero(ended):
        out[i] = obs[i].copy()
    return out, ended.copy()


class EpisodeCounter:
    """Raw return and length of each env's running real episode (what ``RecordEpisodeStatistics`` counts)."""

    def __init__(self, num_envs: int):
        self.returns = np.zeros(num_envs, dtype=np.float64)
        self.lengths = np.zeros(num_envs, dtype=np.int64)

    def add(self, reward: np.ndarray, ids: np.ndarray | slice = slice(None)) -> None:
        """One env step of envs ``ids`` with raw ``reward``."""
        self.returns[ids] += reward
        self.lengths[ids] += 1

    def restart(self, ids: np.ndarray | slice = slice(None)) -> None:
        """A new real episode begins in envs ``ids``."""
        self.returns[ids] = 0.0
        self.lengths[ids] = 0

    def finish(self, over: np.ndarray) -> dict[str, Any]:
        """``final_info`` entries for the envs whose episode is ``over``; their counters restart."""
        stats = {
            "episode": {"r": np.where(over, self.returns, 0.0), "l": np.where(over, self.lengths, 0)},
            "_episode": over.copy(),
        }
        self.restart(over)
        return stats


def check_order(info: dict, ids: np.ndarray) -> None:
    """envpool answers a synchronous call in the order the env ids were sent; fail loudly if not."""
    if not np.array_equal(info["env_id"], ids):
        raise RuntimeError(f"envpool answered envs {info['env_id']} for a call on envs {ids}")


class PoolVectorEnv(gym.vector.VectorEnv):
    """What both envpool vector envs share: the synchronous pool (``batch_size == num_envs``), seeding
    by rebuilding the pool, ``close``."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, task: str, num_envs: int, seeds: list[int], options: dict[str, Any]):
        self.task, self.num_envs, self.options = task, num_envs, options
        self.all_ids = np.arange(num_envs, dtype=np.int32)
        self.seeds = seed_list(seeds, num_envs)  # what the pool takes (int32)
        self.pool = self._make_pool(self.seeds)
        self.fresh = True  # the pool is as built: a reset with its own seeds need not rebuild it

    def _make_pool(self, seeds: list[int]) -> Any:
        import envpool

        return envpool.make(
            self.task,
            env_type="gymnasium",
            num_envs=self.num_envs,
            batch_size=self.num_envs,
            seed=list(seeds),
            **self.options,
        )

    def _reseed(self, seed: int | Sequence[int] | None) -> None:
        """Rebuild the pool when ``reset`` brings seeds, so that a seeded reset replays the same games."""
        seeds = seed_list(seed, self.num_envs) if seed is not None else None
        if seeds is not None and (seeds != self.seeds or not self.fresh):
            self.pool.close()
            self.seeds, self.pool = seeds, self._make_pool(seeds)
        self.fresh = False

    def close_extras(self, **kwargs: Any) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()


# ------------------------------------------------------------------------------------------------------
# Atari
# ------------------------------------------------------------------------------------------------------
def atari_options(cfg: Config, max_episode_steps: int | None = None) -> dict[str, Any]:
    """envpool's Atari options for ``cfg`` (the module docstring says why each)."""
    return {
        "noop_max": cfg.noop_max,
        "frame_skip": cfg.frame_skip,
        "stack_num": 1,
        "img_height": SCREEN,
        "img_width": SCREEN,
        "gray_scale": True,
        "use_inter_area_resize": True,
        "episodic_life": False,
        "use_fire_reset": False,
        "reward_clip": False,
        "zero_discount_on_life_loss": False,
        "repeat_action_probability": 0.0,
        "full_action_space": False,
        "max_episode_steps": max_episode_steps or ALE_MAX_FRAMES // cfg.frame_skip,
    }


class AtariVectorEnv(PoolVectorEnv):
    """envpool Atari games with the 9 details of the gymnasium stack, autoreset in the same step.

    envpool does no-ops, frame skip with max-pooling, grayscale and resizing; lost lives, FIRE reset,
    frame stacking, reward clipping and episode statistics are done here in numpy, on the whole batch.
    """

    def __init__(self, cfg: Config, num_envs: int, *, evaluation: bool = False, max_episode_steps: int | None = None):
        super().__init__(
            check(cfg),
            num_envs,
            env_seeds(cfg.seed, num_envs, evaluation=evaluation),
            atari_options(cfg, max_episode_steps),
        )
        self.episodic_life = cfg.episodic_life and not evaluation
        self.clip_reward_sign = cfg.clip_reward_sign and not evaluation
        self.fire_reset = needs_fire(cfg.env_id)
        n_actions = int(self.pool.action_space.n)
        self.single_action_space = gym.spaces.Discrete(n_actions)
        self.action_space = gym.spaces.MultiDiscrete(np.full(num_envs, n_actions))
        self.single_observation_space = gym.spaces.Box(0, 255, (cfg.frame_stack, SCREEN, SCREEN), np.uint8)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.frames = np.zeros((num_envs, cfg.frame_stack, SCREEN, SCREEN), dtype=np.uint8)
        self.lives = np.zeros(num_envs, dtype=np.int32)
        self.episodes = EpisodeCounter(num_envs)

    # --- the contract ---------------------------------------------------------------------------------
    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new game in every env (reseeded when ``seed`` is given)."""
        self._reseed(seed)
        self._start(self.all_ids, np.zeros(0, dtype=np.int32))
        return self.frames.copy(), {"lives": self.lives.copy()}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One agent step of every env; envs whose training episode ended start the next one at once."""
        obs, _, _, truncated, info = self.pool.step(np.asarray(actions), self.all_ids)
        check_order(info, self.all_ids)
        raw = info["reward"].astype(np.float64)
        self.episodes.add(raw)
        self._push(self.all_ids, obs)
        lives = info["lives"]
        game_over = info["terminated"].astype(bool)
        truncated = np.asarray(truncated, dtype=bool)
        life_lost = self.episodic_life & (lives > 0) & (lives < self.lives)
        self.lives = lives.astype(np.int32)
        terminated = game_over | life_lost
        ended = terminated | truncated
        out: dict[str, Any] = {"lives": self.lives.copy()}
        if ended.any():
            game_done = game_over | truncated  # what envpool itself counts as done
            out["final_obs"], out["_final_obs"] = final_obs(self.frames, ended)
            out["final_info"] = self.episodes.finish(game_done) if game_done.any() else {}
            self._start(np.flatnonzero(game_done).astype(np.int32), np.flatnonzero(ended & ~game_done).astype(np.int32))
        reward = np.sign(raw) if self.clip_reward_sign else raw
        return self.frames.copy(), reward, terminated, truncated, out

    # --- resets ---------------------------------------------------------------------------------------
    def _start(self, new_game: np.ndarray, lost_life: np.ndarray) -> None:
        """Start the next training episode: a real reset (envpool's no-ops) for ``new_game`` envs, one
        no-op step for ``lost_life`` envs (``EpisodicLife``), then FIRE and action 2 where the game needs
        them (``FireReset``); each env's frame stack is then filled with its first frame."""
        if len(new_game):
            self._reset_games(new_game)
        if len(lost_life):
            self._act(lost_life, NOOP)
        ids = np.sort(np.concatenate([new_game, lost_life]))
        if self.fire_reset:
            for action in (FIRE, AFTER_FIRE):
                self._act(ids, action)
        self.frames[ids] = self.frames[ids, -1:]

    def _reset_games(self, ids: np.ndarray) -> None:
        obs, info = self.pool.reset(ids)
        check_order(info, ids)
        self._push(ids, obs)
        self.lives[ids] = info["lives"]
        self.episodes.restart(ids)

    def _act(self, ids: np.ndarray, action: int) -> None:
        """A reset-time step of envs ``ids`` (counted in the episode statistics, reward not trained on);
        a game that ends during it is reset again, as the gymnasium wrappers do."""
        obs, _, _, truncated, info = self.pool.step(np.full(len(ids), action), ids)
        check_order(info, ids)
        self._push(ids, obs)
        self.episodes.add(info["reward"].astype(np.float64), ids)
        self.lives[ids] = info["lives"]
        over = info["terminated"].astype(bool) | np.asarray(truncated, dtype=bool)
        if over.any():
            self._reset_games(ids[over])

    def _push(self, ids: np.ndarray, obs: np.ndarray) -> None:
        """Append envpool's newest frame (``stack_num=1``) to the frame stacks of envs ``ids``."""
        if len(ids) == self.num_envs:
            self.frames[:, :-1] = self.frames[:, 1:]
            self.frames[:, -1] = obs[:, 0]
        else:
            self.frames[ids, :-1] = self.frames[ids, 1:]
            self.frames[ids, -1] = obs[:, 0]


# ------------------------------------------------------------------------------------------------------
# Classic control and MuJoCo
# ------------------------------------------------------------------------------------------------------
class PlainVectorEnv(PoolVectorEnv):
    """envpool's port of a classic-control or MuJoCo env (same id as gymnasium's), autoreset in the same step."""

    def __init__(self, cfg: Config, num_envs: int, *, evaluation: bool = False):
        super().__init__(check(cfg), num_envs, env_seeds(cfg.seed, num_envs, evaluation=evaluation), {})
        from ..workarounds import box_precision_notice_dropped

        with box_precision_notice_dropped():  # workaround 9: envpool's float64 bounds of a float32 Box
            self.single_observation_space = self.pool.observation_space
            self.single_action_space = self.pool.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.episodes = EpisodeCounter(num_envs)

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        self._reseed(seed)
        obs, info = self.pool.reset(self.all_ids)
        check_order(info, self.all_ids)
        self.episodes.restart()
        return obs, {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.pool.step(np.asarray(actions), self.all_ids)
        check_order(info, self.all_ids)
        reward = np.asarray(reward, dtype=np.float64)
        terminated, truncated = np.asarray(terminated, dtype=bool), np.asarray(truncated, dtype=bool)
        self.episodes.add(reward)
        ended = terminated | truncated
        out: dict[str, Any] = {}
        if ended.any():
            out["final_obs"], out["_final_obs"] = final_obs(obs, ended)
            out["final_info"] = self.episodes.finish(ended)
            ids = np.flatnonzero(ended).astype(np.int32)
            first, reset_info = self.pool.reset(ids)
            check_order(reset_info, ids)
            obs = obs.copy()
            obs[ids] = first
        return obs, reward, terminated, truncated, out


# ------------------------------------------------------------------------------------------------------
def make_vector_env(
    cfg: Config, num_envs: int, *, evaluation: bool = False, render: bool = False
) -> gym.vector.VectorEnv:
    """``num_envs`` envpool envs of ``cfg``'s stack (evaluation: no life-loss episodes, raw rewards).

    ``render=True`` (videos need the RGB game screen, which envpool does not give) returns the gymnasium
    backend's vector env instead. Raises :class:`ConfigError` for an env envpool does not have.
    """
    if render:
        from . import gymnasium as gymnasium_backend

        return gymnasium_backend.make_vector_env(cfg, num_envs, evaluation=evaluation, render=render)
    check(cfg)
    if family(cfg.env_id) == "atari":
        return AtariVectorEnv(cfg, num_envs, evaluation=evaluation)
    return PlainVectorEnv(cfg, num_envs, evaluation=evaluation)
