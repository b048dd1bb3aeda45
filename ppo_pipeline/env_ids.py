"""Environment ids: what is registered, ``Pong`` -> ``ALE/Pong-v5``, and which ids are Atari games.

Imports no :class:`~ppo_pipeline.config.Config` (the config imports this module to resolve its env id).
"""

from __future__ import annotations

import functools

import gymnasium as gym

from .errors import ConfigError, suggest


@functools.cache
def registered() -> list[str]:
    """Every gymnasium id, the ALE games included (ale-py registers them on import)."""
    import ale_py

    ale_py.ALEInterface.setLoggerMode(ale_py.LoggerMode.Error)   # no banner per emulator on stderr
    gym.register_envs(ale_py)
    return sorted(gym.envs.registry.keys())


def resolve_env_id(env_id: str) -> str:
    """Return a registered gymnasium id; ``Pong`` is accepted for ``ALE/Pong-v5``.

    Raises :class:`ConfigError` naming the id and the closest registered ones.
    """
    ids = registered()
    if env_id in ids:
        return env_id
    for cand in (f"ALE/{env_id}-v5", f"ALE/{env_id}"):
        if cand in ids:
            return cand
    raise ConfigError(f"env_id {env_id!r} is not a registered gymnasium environment{suggest(env_id, ids)}")


def is_atari(env_id: str) -> bool:
    """True for ALE games (``ALE/Pong-v5``, ``PongNoFrameskip-v4``)."""
    registered()
    spec = gym.envs.registry.get(env_id)
    entry = str(getattr(spec, "entry_point", "")) if spec else ""
    return "ale_py" in entry or env_id.startswith("ALE/")
