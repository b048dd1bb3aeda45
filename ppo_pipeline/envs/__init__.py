"""Environments: one contract, several backends.

Whatever the backend, :func:`make_vector_env` returns a batched env that behaves like a gymnasium
``VectorEnv`` with ``autoreset_mode=SAME_STEP``; it is what the collector, evaluation and the bench
step:

* ``num_envs``, ``single_observation_space``, ``single_action_space``, ``action_space``, ``close()``;
* ``reset(seed=[s_0, ..., s_{n-1}])`` -> ``(obs, info)``, ``obs`` a numpy array [n, *obs_shape];
* ``step(actions)`` -> ``(obs, reward, terminated, truncated, info)``: numpy arrays [n]; an env whose
  episode ended is reset in the same step (``obs`` is the new episode's first observation) and its
  last observation is in ``info["final_obs"][i]``; ``info["final_info"]["episode"]`` holds ``"r"``
  and ``"l"`` (the *real* episode's return and length: the game's score over all lives, unclipped)
  with the mask ``info["final_info"]["_episode"]``;
* the training reward is the stack's (sign-clipped for Atari); a lost life ends the training episode
  (``terminated``) while the episode statistics count whole games.

Backends (``--env-backend``): ``gymnasium`` (:mod:`.gymnasium`: gymnasium wrappers, sync or subprocess
vector envs), ``envpool`` (:mod:`.envpool`: C++ batched envs with the same Atari details) and ``torchrl``
(:mod:`.torchrl`: any torchrl ``EnvBase`` -- ``dmc:DOMAIN-TASK``, a user's ``torchrl:`` factory, or a
gymnasium id through torchrl's ``GymEnv``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..config import Config
from ..errors import ConfigError
from . import gymnasium as gymnasium_backend
from .ids import EnvSpec, decided, family

if TYPE_CHECKING:
    import gymnasium as gym


def resolve_id(env_id: str, env_module: str = "") -> str:
    """Any env id a run takes, looked up: a torchrl id (``dmc:``, ``torchrl:``) checked by the torchrl backend,
    anything else by :func:`.ids.resolve_env_id` (``Pong`` -> ``ALE/Pong-v5``). :class:`ConfigError` otherwise."""
    from .ids import import_env_module, is_torchrl_id, resolve_env_id

    if is_torchrl_id(env_id):
        from .torchrl import check_id

        import_env_module(env_module)
        return check_id(env_id)
    return resolve_env_id(env_id, env_module)


_SPECS: dict[tuple, EnvSpec] = {}  # (env_id, env_module, env_backend, pixels, noop_max, pack) -> its spec


def spec_of(cfg: Config, *, pack: bool = False) -> EnvSpec:
    """What ``cfg``'s (resolved) env id is and which backend builds its envs (``pack``: a pack's envs,
    :func:`backend`), decided once per env stack and cached: :func:`ppo_pipeline.run.prepare.prepare` builds it,
    the later stages read it."""
    key = (cfg.env_id, cfg.env_module, cfg.env_backend, cfg.pixels, cfg.noop_max, pack)
    spec = _SPECS.get(key)
    if spec is None:
        fam = family(cfg.env_id)
        spec = EnvSpec(cfg.env_id, cfg.env_module, fam, _choose_backend(cfg, fam, pack), cfg.pixels, pack)
        if decided(cfg.env_id):  # (an id no registry holds yet is looked at again next time)
            _SPECS[key] = spec
    return spec


def backend(cfg: Config, *, pack: bool = False) -> str:
    """The backend that builds ``cfg``'s envs (:func:`spec_of`): ``cfg.env_backend``, with ``auto`` resolved to the
    faster one measured for the env family (``python -m ppo_pipeline.bench --raw``): envpool for Atari games it has
    (C++ emulators stepped in threads, no subprocesses), gymnasium for everything else (classic control
    and MuJoCo step faster in one process than through envpool's thread pool at a run's env counts, and
    only in-process envs can be snapshotted for an exact resume). A pack (``pack``) steps all its members'
    envs at once, P times as many: for MuJoCo envpool is then the faster (Hopper-v5 x 33: 10.7k against 8.1k
    agent steps/s; ``--env-backend gymnasium`` keeps such a pack's resume exact); for classic control the two
    are even (CartPole x 33 x 8 envs: 25.6k against 24.2k), so gymnasium stays (exact resume, the solo runs'
    own env implementation)."""
    return spec_of(cfg, pack=pack).backend


def _choose_backend(cfg: Config, fam: str, pack: bool) -> str:
    if fam in ("dmc", "torchrl"):
        return "torchrl"
    if cfg.env_backend != "auto":
        return cfg.env_backend
    if fam == "atari" or (pack and fam == "mujoco"):
        from . import envpool

        try:
            envpool.check(cfg)
            return "envpool"
        except ConfigError:
            pass
    return "gymnasium"


def check(cfg: Config) -> None:
    """Raise :class:`~ppo_pipeline.errors.ConfigError` (one line) when ``cfg``'s backend cannot build its
    envs; run before anything starts."""
    from . import seeds

    seeds.check(cfg.seed, cfg.num_envs, cfg.eval_episodes)
    spec = spec_of(cfg)
    if cfg.pixels and not spec.is_dmc:
        raise ConfigError(f"pixels: only dmc: ids render pixel observations (env_id {cfg.env_id!r})")
    if spec.is_torchrl_id and cfg.env_backend not in ("auto", "torchrl"):
        raise ConfigError(
            f"env_backend={cfg.env_backend}: {cfg.env_id} is a torchrl env; use --env-backend auto or torchrl"
        )
    chosen = spec.backend
    if chosen == "envpool":
        from . import envpool

        envpool.check(cfg)
    if chosen == "torchrl":
        from . import torchrl as torchrl_backend

        torchrl_backend.check(cfg)
    if cfg.capture_video:
        check_renderable(cfg)


_SPACES: dict[
    tuple, tuple[gym.Space, gym.Space]
] = {}  # env stack -> (observation space, action space) of one of its envs


def spaces(cfg: Config) -> tuple[gym.Space, gym.Space]:
    """(single observation space, single action space) of ``cfg``'s envs, from one env built once per env stack
    (:data:`_RENDER_FIELDS`): what the agent is built for, known before anything starts."""
    key = tuple(repr(getattr(cfg, k)) for k in _RENDER_FIELDS)
    if key not in _SPACES:
        envs = make_vector_env(cfg, 1, evaluation=True)
        try:
            _SPACES[key] = (envs.single_observation_space, envs.single_action_space)
        finally:
            envs.close()
    return _SPACES[key]


_RENDERABLE: set[tuple] = set()  # env stacks whose env was seen to render here
# what decides whether an env renders: which env, which implementation, pixels or not (not the seed, the
# hyperparameters or the wrappers' numbers), so a sweep builds one env per env id, not one per variant
_RENDER_FIELDS = ("env_id", "env_module", "env_backend", "pixels")


def check_renderable(cfg: Config) -> None:
    """Raise :class:`~ppo_pipeline.errors.ConfigError` (one line) when ``cfg``'s env cannot render RGB
    frames here (``--capture-video``; a missing renderer such as pygame, no OpenGL for MuJoCo). The env is
    built once per env stack (:data:`_RENDER_FIELDS`): the seeds and variants of a sweep do not build it again."""
    key = tuple(repr(getattr(cfg, k)) for k in _RENDER_FIELDS)
    if key in _RENDERABLE:
        return
    envs = make_vector_env(cfg, 1, evaluation=True, render=True)
    try:
        envs.reset(seed=[0])
        frame = envs.render()
        frame = frame[0] if isinstance(frame, (tuple, list)) else frame
        if frame is None or getattr(frame, "ndim", 0) != 3:
            raise ValueError(f"rendered {type(frame).__name__}, not an RGB frame")
    except Exception as e:
        msg = " ".join(str(e).split())[:160]
        raise ConfigError(
            f"capture_video: {cfg.env_id} cannot render frames here ({type(e).__name__}: {msg})"
        ) from None
    finally:
        envs.close()
    _RENDERABLE.add(key)


def make_vector_env(cfg: Config, num_envs: int, *, evaluation: bool = False, render: bool = False, pack: bool = False):
    """``num_envs`` envs of ``cfg``'s stack (evaluation: no life-loss episodes, raw rewards), batched (``pack``:
    a pack's members' envs, :func:`backend`)."""
    chosen = backend(cfg, pack=pack)
    if chosen == "envpool":
        from . import envpool

        return envpool.make_vector_env(cfg, num_envs, evaluation=evaluation, render=render)
    if chosen == "torchrl":
        from . import torchrl as torchrl_backend

        return torchrl_backend.make_vector_env(cfg, num_envs, evaluation=evaluation, render=render)
    return gymnasium_backend.make_vector_env(cfg, num_envs, evaluation=evaluation, render=render)
