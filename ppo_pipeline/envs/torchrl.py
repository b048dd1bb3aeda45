"""The torchrl backend: any torchrl ``EnvBase`` (DMControl, Brax, IsaacLab, Jumanji, PettingZoo, a
user's own), batched or not, with an optional torchrl transform chain, behind the batched-env contract
of :mod:`ppo_pipeline.envs` (numpy in and out, ``SAME_STEP`` autoreset, ``info["final_obs"]``, episode
statistics).

Env ids of this backend:

* ``dmc:DOMAIN-TASK`` (``dmc:cheetah-run``, ``dmc:ball_in_cup-catch``): torchrl's ``DMControlEnv``; the
  state observations are concatenated into one float32 vector (``CatTensors`` + ``DoubleToFloat``), or,
  with ``--pixels``, 84x84 RGB frames rendered by MuJoCo, ``uint8[3, 84, 84]`` (``PermuteTransform``).
* ``torchrl:NAME``: a factory registered in this process by :func:`ppo_pipeline.api.train` (the Python
  entry point), or ``torchrl:package.module:function``, a factory imported by name (what a config.json
  keeps, so ``--resume``, ``play`` and ``export`` find it again).
* ``--env-backend torchrl`` with a gymnasium id: torchrl's ``GymEnv`` (the cost of torchrl's env
  machinery on the same env, for the bench).

A factory returns an ``EnvBase``; one that takes a ``num_envs`` keyword is called with it and may return a
batched env of that size; an unbatched env is batched by torchrl's ``SerialEnv``.

Normalization: one semantics for every backend, ours (:mod:`ppo_pipeline.algo.normalize`, numpy, applied by the
collector), not torchrl's ``VecNorm``/``ObservationNorm``. Why: the final observation of a truncated
episode must be normalized with the statistics of that step, without updating them, for the bootstrap
V(s_T); evaluation must observe through a frozen copy; checkpoints must keep the statistics. Ours does all
three the same way for gymnasium, envpool and torchrl envs, so a checkpoint and its frozen evaluation
mean the same thing whichever backend made it. A user's own transform chain runs inside the env, before
ours: put task-specific transforms there, not a second normalization.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from ..errors import ConfigError, suggest
from ..workarounds import distribution_default_kept
from .ids import DMC, TORCHRL, family, import_user_module
from .seeds import fit_int32

PIXELS = 84  # side of the rendered frame with --pixels

Factory = Callable[..., Any]
_REGISTRY: dict[str, tuple[Factory, Any]] = {}  # torchrl:NAME -> (factory, transform chain), this process


def register(name: str, factory: Factory, transform: Any = None) -> str:
    """Make ``factory`` (-> torchrl ``EnvBase``) and ``transform`` (a torchrl ``Transform``, a list of them,
    or None) trainable as env id ``torchrl:NAME`` in this process; returns that id."""
    env_id = TORCHRL + name
    _REGISTRY[env_id] = (factory, transform)
    return env_id


# ------------------------------------------------------------------------------------------------------
# Env ids: checked into one-line errors before anything starts
# ------------------------------------------------------------------------------------------------------
@functools.cache
def quiet_mujoco() -> None:
    """Before dm_control is imported (by us or a user's module): MuJoCo renders through EGL when there is
    no display (else dm_control tries GLFW and warns), and the one XML deprecation every cheetah build
    logs is dropped (:func:`ppo_pipeline.workarounds.quiet_mujoco_warnings`, workaround 7)."""
    from ..workarounds import quiet_mujoco_warnings
    from .gymnasium import use_headless_gl

    use_headless_gl()
    quiet_mujoco_warnings()


def _import_dm_control() -> None:
    quiet_mujoco()
    import dm_control.suite  # noqa: F401


@functools.cache
def dmc_tasks() -> dict[str, tuple[str, ...]]:
    """DMControl's suite: domain -> its tasks."""
    try:
        _import_dm_control()
        from dm_control import suite
    except Exception as e:  # not installed, or a MuJoCo it does not run on
        raise ConfigError(
            f"dmc: ids need dm-control, which cannot be imported here ({type(e).__name__}: {e})"
        ) from None
    out: dict[str, list[str]] = {}
    for domain, task in suite.ALL_TASKS:
        out.setdefault(domain, []).append(task)
    return {k: tuple(v) for k, v in out.items()}


def parse_dmc(env_id: str) -> tuple[str, str]:
    """``dmc:cheetah-run`` -> ("cheetah", "run"); :class:`ConfigError` for an unknown domain or task."""
    rest = env_id[len(DMC) :]
    domain, sep, task = rest.partition("-")
    tasks = dmc_tasks()
    if not sep or not task:
        raise ConfigError(f"env_id {env_id!r} must be dmc:DOMAIN-TASK, e.g. dmc:cheetah-run")
    if domain not in tasks:
        raise ConfigError(
            f"env_id {env_id!r}: unknown DMControl domain {domain!r}{suggest(domain, list(tasks))}; "
            f"domains: {', '.join(sorted(tasks))}"
        )
    if task not in tasks[domain]:
        raise ConfigError(
            f"env_id {env_id!r}: DMControl domain {domain!r} has no task {task!r}; "
            f"its tasks: {', '.join(tasks[domain])}"
        )
    return domain, task


def factory_of(env_id: str) -> tuple[Factory, Any]:
    """The (factory, transform) of a ``torchrl:`` id: registered in this process, or imported by name."""
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    target = env_id[len(TORCHRL) :]
    module_name, sep, attr = target.partition(":")
    if not sep:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ConfigError(
            f"env_id {env_id!r} is neither registered in this process (registered: {known}) nor "
            f"torchrl:package.module:factory"
        )
    quiet_mujoco()  # before a user's module imports dm_control
    try:
        module = import_user_module(module_name)
    except ImportError as e:
        raise ConfigError(f"env_id {env_id!r}: module {module_name!r} cannot be imported ({e})") from None
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
    if not callable(obj):
        raise ConfigError(
            f"env_id {env_id!r}: {module_name} has no callable {attr!r} (a function returning a torchrl EnvBase)"
        )
    return obj, None


def check_id(env_id: str) -> str:
    """Validate a ``dmc:`` or ``torchrl:`` id without building the env; returns it."""
    if env_id.startswith(DMC):
        parse_dmc(env_id)
    else:
        factory_of(env_id)
    return env_id


# ------------------------------------------------------------------------------------------------------
# Building the torchrl env
# ------------------------------------------------------------------------------------------------------
def _clone_transform(transform: Any) -> Any:
    """A fresh copy of a user's transform chain (a torchrl transform belongs to one env only)."""
    with distribution_default_kept():  # workaround 6
        from torchrl.envs import Compose

    if transform is None:
        return None
    if isinstance(transform, (list, tuple)):
        return Compose(*[t.clone() for t in transform])
    return transform.clone()


def _call_factory(factory: Factory, num_envs: int) -> Any:
    try:
        takes_n = "num_envs" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_n = False
    return factory(num_envs=num_envs) if takes_n else factory()


def _dmc_env(cfg: Any, render: bool) -> Any:
    with distribution_default_kept():  # workaround 6
        from torchrl.envs import (
            CatTensors,
            DMControlEnv,
            DoubleToFloat,
            PermuteTransform,
            TransformedEnv,
        )

    domain, task = parse_dmc(cfg.env_id)  # (imports dm_control for headless rendering first)
    if cfg.pixels:
        from ..workarounds import dmc_pixels_env

        env = dmc_pixels_env(domain, task, PIXELS, PIXELS)
        return TransformedEnv(env, PermuteTransform((-1, -3, -2), in_keys=["pixels"], out_keys=["observation"]))
    env = DMControlEnv(domain, task)
    keys = list(env.observation_spec.keys())
    return TransformedEnv(env, CatTensors(in_keys=keys, out_key="observation", del_keys=True)).append_transform(
        DoubleToFloat(in_keys=["observation"])
    )


def make_torchrl_env(cfg: Any, num_envs: int, *, render: bool = False) -> Any:
    """A torchrl ``EnvBase`` of batch size ``[num_envs]`` for ``cfg`` (any id of this backend)."""
    with distribution_default_kept():  # workaround 6
        from torchrl.envs import EnvBase, SerialEnv, TransformedEnv

    transform = None
    if cfg.env_id.startswith(DMC):

        def one() -> Any:
            return _dmc_env(cfg, render)

        factory: Factory = one
    elif cfg.env_id.startswith(TORCHRL):
        factory, transform = factory_of(cfg.env_id)
    else:  # a gymnasium id through torchrl's GymEnv (the bench's torchrl backend)
        with distribution_default_kept():  # workaround 6
            from torchrl.envs import GymEnv

        from .gymnasium import quiet_mujoco_if_used
        from .ids import import_env_module

        mujoco_task = family(cfg.env_id) == "mujoco"

        def factory() -> Any:
            import_env_module(cfg.env_module)
            quiet_mujoco_if_used(mujoco_task)
            return GymEnv(cfg.env_id, render_mode="rgb_array" if render else None)

    env = _call_factory(factory, num_envs)
    if not isinstance(env, EnvBase):
        raise ConfigError(f"env_id {cfg.env_id!r}: the factory returned {type(env).__name__}, not a torchrl EnvBase")
    if env.batch_size == torch.Size([]):
        if num_envs > 1:
            env.close(raise_if_closed=False)
            env = SerialEnv(num_envs, lambda: _call_factory(factory, 1))
    elif tuple(env.batch_size) != (num_envs,):
        got = list(env.batch_size)
        env.close(raise_if_closed=False)
        raise ConfigError(
            f"env_id {cfg.env_id!r}: the factory returned a batch of {got} envs where {num_envs} are "
            f"needed; give the factory a num_envs parameter, or return one unbatched env"
        )
    if transform is not None:
        env = TransformedEnv(env, _clone_transform(transform))
    return env


# ------------------------------------------------------------------------------------------------------
# torchrl specs -> gymnasium spaces (what the agent is built from)
# ------------------------------------------------------------------------------------------------------
def _observation_key(env: Any, env_id: str) -> str:
    keys = [k for k in env.observation_spec.keys(True, True) if isinstance(k, str)]
    if "observation" in keys:
        return "observation"
    if len(keys) == 1:
        return keys[0]
    raise ConfigError(
        f"env_id {env_id!r}: the torchrl env has observation keys {keys}: the agent reads one; name it "
        f"'observation' (e.g. a CatTensors transform in your chain)"
    )


def spaces_of(env: Any, env_id: str) -> tuple[str, gym.Space, gym.Space, bool]:
    """(observation key, observation space, action space, one-hot actions) of a torchrl env; one-line
    :class:`ConfigError` for specs the agent cannot handle."""
    with distribution_default_kept():  # workaround 6
        from torchrl.data import Bounded, Categorical, OneHot, Unbounded

    obs_key = _observation_key(env, env_id)
    obs_spec = env.observation_spec[obs_key]
    shape = tuple(obs_spec.shape[len(env.batch_size) :])
    dtype = obs_spec.dtype
    if len(shape) not in (1, 3) or dtype not in (torch.float32, torch.float64, torch.uint8):
        raise ConfigError(
            f"env_id {env_id!r}: observation {obs_key!r} is {list(shape)} {dtype}; the agent takes a "
            f"float vector [D] or uint8 pixels [C, H, W]"
        )
    if len(shape) == 3 and dtype != torch.uint8:
        raise ConfigError(
            f"env_id {env_id!r}: pixel observation {obs_key!r} is {dtype}; the agent's CNN takes "
            f"uint8 [C, 84, 84] frames"
        )
    if len(shape) == 3 and shape[1:] != (PIXELS, PIXELS):
        raise ConfigError(
            f"env_id {env_id!r}: pixel observation {obs_key!r} is {list(shape)}; the agent's CNN takes [C, 84, 84]"
        )
    obs_space = (
        gym.spaces.Box(0, 255, shape, np.uint8)
        if dtype == torch.uint8
        else gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
    )
    keys = list(env.full_action_spec.keys(True, True))
    if len(keys) != 1:
        raise ConfigError(f"env_id {env_id!r}: the torchrl env has action keys {keys}; the agent acts on one")
    act = env.action_spec
    act_shape = tuple(act.shape[len(env.batch_size) :])
    if isinstance(act, OneHot) and len(act_shape) == 1:
        return obs_key, obs_space, gym.spaces.Discrete(act_shape[0]), True
    if isinstance(act, Categorical) and act_shape == ():
        return obs_key, obs_space, gym.spaces.Discrete(int(act.space.n)), False
    if isinstance(act, (Bounded, Unbounded)) and act.dtype.is_floating_point and len(act_shape) == 1:
        if isinstance(act, Bounded):
            low = act.space.low.reshape(-1, *act_shape)[0].cpu().numpy().astype(np.float32)
            high = act.space.high.reshape(-1, *act_shape)[0].cpu().numpy().astype(np.float32)
        else:
            low, high = np.full(act_shape, -np.inf, np.float32), np.full(act_shape, np.inf, np.float32)
        return obs_key, obs_space, gym.spaces.Box(low, high, act_shape, np.float32), False
    raise ConfigError(
        f"env_id {env_id!r}: action spec {type(act).__name__} {list(act_shape)} {act.dtype} is not "
        f"supported; the agent takes a one-hot/categorical discrete action or a float vector [A]"
    )


# ------------------------------------------------------------------------------------------------------
# The adapter
# ------------------------------------------------------------------------------------------------------
class TorchRLVectorEnv:
    """A torchrl env of batch size ``[n]`` behind the batched-env contract (see :mod:`ppo_pipeline.envs`).

    ``step`` is torchrl's ``step_and_maybe_reset``: the ``"next"`` observation of an env whose episode ended
    is its final one (``info["final_obs"]``), the carried root observation the next episode's first. The
    episode statistics are summed here from the rewards the env (with the user's chain) emits.
    """

    def __init__(self, env: Any, env_id: str, render: bool = False):
        self.env = env
        self.render_mode = "rgb_array" if render else None
        self.batched = len(env.batch_size) == 1  # an unbatched env is one env (num_envs=1)
        self.num_envs = int(env.batch_size[0]) if self.batched else 1
        self.obs_key, self.single_observation_space, self.single_action_space, self.one_hot = spaces_of(env, env_id)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, self.num_envs)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, self.num_envs)
        self._td: Any = None
        self._ret = np.zeros(self.num_envs)
        self._len = np.zeros(self.num_envs, dtype=np.int64)

    def _obs(self, td: Any) -> np.ndarray:
        x = td[self.obs_key]
        x = x if self.batched else x.unsqueeze(0)
        return x.numpy() if x.dtype == torch.uint8 else x.to(torch.float32).numpy()

    def reset(self, seed: list[int] | int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            # dm_control seeds a uint32 RandomState: a large run seed's env seed is folded (.seeds.fit_int32)
            self.env.set_seed(fit_int32([int(seed[0] if isinstance(seed, (list, tuple)) else seed)])[0])
        self._td = self.env.reset()
        self._ret[:] = 0
        self._len[:] = 0
        return self._obs(self._td), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        spec = self.env.action_spec
        a = torch.as_tensor(np.asarray(actions))
        if self.one_hot:
            space = self.single_action_space
            assert isinstance(space, gym.spaces.Discrete)  # spaces_of: one-hot actions are a Discrete space's
            a = torch.nn.functional.one_hot(a.long(), space.n)
        self._td.set("action", a.to(spec.dtype).reshape(spec.shape))
        out, self._td = self.env.step_and_maybe_reset(self._td)
        nxt = out["next"]
        n = self.num_envs
        reward = nxt["reward"].reshape(n).to(torch.float64).numpy()
        done = nxt["done"].reshape(n).numpy()
        term = nxt["terminated"].reshape(n).numpy() if "terminated" in nxt.keys() else done.copy()
        trunc = nxt["truncated"].reshape(n).numpy() if "truncated" in nxt.keys() else done & ~term
        trunc = trunc & ~term
        self._ret += reward
        self._len += 1
        info: dict = {}
        if done.any():
            info["final_obs"] = self._obs(nxt)
            info["_final_obs"] = done.copy()
            info["final_info"] = {"episode": {"r": self._ret.copy(), "l": self._len.copy()}, "_episode": done.copy()}
            self._ret[done] = 0.0
            self._len[done] = 0
        return self._obs(self._td), reward, term.copy(), trunc, info

    def render(self) -> Any:
        base = self.env
        while hasattr(base, "base_env"):
            base = base.base_env
        if hasattr(base, "_env") and hasattr(base._env, "physics"):  # DMControl: env 0's camera 0
            return [base._env.physics.render(height=480, width=640, camera_id=0)]
        if hasattr(base, "_env") and hasattr(base._env, "render"):  # GymEnv made with render_mode
            return [base._env.render()]
        raise RuntimeError(f"{type(base).__name__} has no RGB render here")

    def close(self) -> None:
        self.env.close(raise_if_closed=False)


def check(cfg: Any) -> None:
    """Build one env of ``cfg`` and check that the agent can handle its specs (one-line
    :class:`ConfigError`); run before anything starts."""
    if cfg.env_id in _REGISTRY and cfg.collector_workers > 1:
        raise ConfigError(
            f"collector_workers={cfg.collector_workers}: {cfg.env_id} is registered in this process only; "
            f"worker processes build envs by name: give torchrl:package.module:function"
        )
    if family(cfg.env_id) == "atari":
        raise ConfigError(
            f"env_backend=torchrl: {cfg.env_id} is an Atari game; its real-game statistics and "
            f"life-loss episodes come from our gymnasium or envpool stacks (--env-backend gymnasium "
            f"or envpool)"
        )
    envs = make_vector_env(cfg, 1)
    envs.close()


def make_vector_env(cfg: Any, num_envs: int, *, evaluation: bool = False, render: bool = False) -> TorchRLVectorEnv:
    """``num_envs`` envs of ``cfg``'s torchrl env behind the batched-env contract."""
    env = make_torchrl_env(cfg, num_envs, render=render)
    try:
        return TorchRLVectorEnv(env, cfg.env_id, render)
    except BaseException:
        env.close(raise_if_closed=False)
        raise
