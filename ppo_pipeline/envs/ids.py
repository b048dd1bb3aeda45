"""Environment ids: what is registered, ``Pong`` -> ``ALE/Pong-v5``, which family an id is of (:func:`family`,
decided once per id: Atari, MuJoCo, classic control, ...), the typed :class:`EnvSpec` a run's later stages read,
and users' own envs: ``package.module:EnvClass`` (any ``gymnasium.Env`` subclass, no registration needed)
or a module that registers gymnasium ids when imported (``--env-module my_pkg``).

Imports no :class:`~ppo_pipeline.config.Config` and no env backend: the lowest layer of env lookups.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from ..errors import ConfigError, suggest


@functools.cache
def _register_ale() -> None:
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)  # no banner per emulator on stderr
    gym.register_envs(ale_py)


BULLET_SUFFIX = "BulletEnv-v0"  # pybullet-envs-gymnasium's ids: HumanoidBulletEnv-v0, HumanoidFlagrunBulletEnv-v0, ...
BULLET_INSTALL = 'pip install -e ".[bullet]"'


def is_bullet(env_id: str) -> bool:
    """An id of the Bullet ports of Roboschool's tasks (``pybullet-envs-gymnasium``; Sec. 6.3's humanoids)."""
    return env_id.endswith(BULLET_SUFFIX) and ":" not in env_id


@functools.cache
def _register_bullet() -> bool:
    """Import ``pybullet_envs_gymnasium`` (it registers its ids; pybullet's banner kept off stdout): False where
    the extra is not installed."""
    from ..workarounds import c_output_silenced

    try:
        with c_output_silenced():  # (pybullet itself prints its banner; the envs import it when made)
            import pybullet  # noqa: F401
            import pybullet_envs_gymnasium  # noqa: F401
    except ImportError:
        return False
    return True


def register_bullet(env_id: str) -> None:
    """Make a Bullet id known (:func:`is_bullet`), or raise :class:`ConfigError` naming the install command."""
    if not _register_bullet():
        raise ConfigError(
            f"env_id {env_id!r} is a Bullet task: install the bullet extra first ({BULLET_INSTALL}: "
            f"pybullet, pybullet-envs-gymnasium)"
        )


def registered() -> list[str]:
    """Every gymnasium id, the ALE games included (ale-py registers them on import), and the Bullet ports where
    the ``bullet`` extra is installed."""
    _register_ale()
    _register_bullet()
    return sorted(gym.envs.registry.keys())


def import_user_module(name: str) -> Any:
    """Import a user's module from the installed packages or, failing that, the current directory (a
    script's ``sys.path`` starts at the script's folder, not where the user typed the command)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if e.name != name.split(".")[0] or cwd in sys.path or "" in sys.path:
            raise
        sys.path.append(cwd)  # spawned env workers get the parent's sys.path
        return importlib.import_module(name)


def import_env_module(name: str) -> None:
    """Import ``name`` (``--env-module``: a package that registers gymnasium ids when imported)."""
    if not name:
        return
    try:
        import_user_module(name)
    except ImportError as e:
        raise ConfigError(f"env_module {name!r} cannot be imported ({e})") from None


DMC = "dmc:"  # dmc:DOMAIN-TASK, DMControl through torchrl (ppo_pipeline.envs.torchrl)
TORCHRL = "torchrl:"  # torchrl:package.module:function, a torchrl env factory


def is_torchrl_id(env_id: str) -> bool:
    """An id of the torchrl backend (``dmc:`` or ``torchrl:``), not a gymnasium one."""
    return env_id.startswith((DMC, TORCHRL))


def is_entry_point(env_id: str) -> bool:
    """``package.module:EnvClass`` rather than a registered id (or a torchrl ``dmc:``/``torchrl:`` id)."""
    return ":" in env_id and env_id not in gym.envs.registry and not is_torchrl_id(env_id)


def env_class(entry_point: str) -> type:
    """The ``gymnasium.Env`` subclass named by ``package.module:EnvClass``; :class:`ConfigError` otherwise."""
    module_name, _, class_name = entry_point.partition(":")
    try:
        module = import_user_module(module_name)
    except ImportError as e:
        raise ConfigError(f"env_id {entry_point!r}: module {module_name!r} cannot be imported ({e})") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, gym.Env)):
        envs = sorted(
            k
            for k, v in vars(module).items()
            if isinstance(v, type) and issubclass(v, gym.Env) and v.__module__ == module.__name__
        )
        raise ConfigError(
            f"env_id {entry_point!r}: {module_name} has no gymnasium.Env subclass {class_name!r}"
            + (f"; it has {', '.join(envs)}" if envs else "")
        )
    return cls


def resolve_env_id(env_id: str, env_module: str = "") -> str:
    """Return a registered gymnasium id (``Pong`` is accepted for ``ALE/Pong-v5``), or a checked
    ``package.module:EnvClass``. ``env_module`` is imported first. (torchrl ids are the torchrl backend's
    to check: :func:`ppo_pipeline.envs.resolve_id` takes any id.)

    Raises :class:`ConfigError` naming the id and the closest registered ones.
    """
    import_env_module(env_module)
    if is_entry_point(env_id):
        env_class(env_id)
        return env_id
    if is_bullet(env_id):
        register_bullet(env_id)
    candidates = (env_id, f"ALE/{env_id}-v5", f"ALE/{env_id}")
    _register_ale()
    found = next((c for c in candidates if c in gym.envs.registry), None)
    if found is not None:
        return found
    ids = registered()  # Bullet's registrations too: only for an id found nowhere else (they import torch)
    found = next((c for c in candidates if c in ids), None)
    if found is not None:
        return found
    raise ConfigError(
        f"env_id {env_id!r} is not a registered gymnasium environment{suggest(env_id, ids)}"
        + (
            ""
            if env_module
            else "; your own env: --env-id package.module:EnvClass, or --env-module PKG for a package that registers it"
        )
    )


# ------------------------------------------------------------------------------------------------------
# What an id is: its family, decided once
# ------------------------------------------------------------------------------------------------------
# atari: ALE games; mujoco: gymnasium's MuJoCo tasks; classic: gymnasium's classic control; bullet: the Bullet
# ports (BULLET_SUFFIX); dmc: dmc:DOMAIN-TASK; torchrl: torchrl:factory; class: package.module:EnvClass;
# other: any other registered id (a user's module's), or one not registered here
FAMILIES = ("atari", "mujoco", "classic", "bullet", "dmc", "torchrl", "class", "other")
_FAMILY: dict[str, str] = {}  # env id -> its family, for ids whose family cannot change any more


def derive_family(env_id: str) -> tuple[str, bool]:
    """(``env_id``'s family, whether that is final): the one place the prefixes and the registry's entry points are
    read. Not final for a plain id the registry does not hold (a module imported later may register it)."""
    if env_id.startswith(DMC):
        return "dmc", True
    if env_id.startswith(TORCHRL):
        return "torchrl", True
    spec = gym.envs.registry.get(env_id)
    if spec is None:  # ALE's and Bullet's ids are registered when their packages are imported
        _register_ale()
        _register_bullet()
        spec = gym.envs.registry.get(env_id)
    entry = str(getattr(spec, "entry_point", "")) if spec else ""
    if "ale_py" in entry or env_id.startswith("ALE/"):
        return "atari", True
    if "gymnasium.envs.mujoco" in entry:
        return "mujoco", True
    if "classic_control" in entry:
        return "classic", True
    if is_bullet(env_id):
        return "bullet", True
    if spec is None and ":" in env_id:
        return "class", True
    return "other", spec is not None


def family(env_id: str) -> str:
    """``env_id``'s family (one of :data:`FAMILIES`), derived once per id (:func:`derive_family`)."""
    known = _FAMILY.get(env_id)
    if known is not None:
        return known
    fam, final = derive_family(env_id)
    if final:
        _FAMILY[env_id] = fam
    return fam


def decided(env_id: str) -> bool:
    """Whether ``env_id``'s family is final (cached): a registered id, a prefixed one (``ALE/``, ``dmc:``, ...)."""
    return env_id in _FAMILY


def is_mujoco(env_id: str) -> bool:
    """True for gymnasium's MuJoCo tasks (``Hopper-v5``, ...)."""
    return family(env_id) == "mujoco"


def is_atari(env_id: str) -> bool:
    """True for ALE games (``ALE/Pong-v5``, ``PongNoFrameskip-v4``)."""
    return family(env_id) == "atari"


@dataclass(frozen=True)
class EnvSpec:
    """What a run's env id is, decided once where the run is prepared (:func:`ppo_pipeline.envs.spec_of`, cached):
    the resolved id, its family, the backend that builds its envs and whether they observe pixels. The later
    stages (env checks, the backends, the budget line, the sweep's cost) read it instead of asking the registry
    again. Not a :class:`~ppo_pipeline.config.Config` field: the config stays the plain values it is saved as.
    (Not gymnasium's ``EnvSpec``, a registry entry.)"""

    id: str
    module: str  # --env-module, imported before the id was resolved
    family: str  # one of FAMILIES
    backend: str  # gymnasium, envpool or torchrl: the one that builds the envs
    pixels: bool = False  # dmc: rendered 84x84 RGB frames
    pack: bool = False  # a pack's envs (its members' envs stepped at once: the backend may differ)

    @property
    def is_atari(self) -> bool:
        return self.family == "atari"

    @property
    def is_mujoco(self) -> bool:
        return self.family == "mujoco"

    @property
    def is_dmc(self) -> bool:
        return self.family == "dmc"

    @property
    def is_torchrl_id(self) -> bool:
        """A ``dmc:`` or ``torchrl:`` id (the torchrl backend's, always)."""
        return self.family in ("dmc", "torchrl")
