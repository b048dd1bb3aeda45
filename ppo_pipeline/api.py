"""The public Python API: ``ppo_pipeline.train``.

The recipes (``recipes/*.py``) are the command-line entry points; this is the same run from Python, on any
env id the recipes take or on a factory of torchrl envs, with a transform chain and hooks of your own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from .config import Config
from .envs import ids as env_ids
from .launch import new_run
from .run.callbacks import Callback
from .run.prepare import budget_line

__all__ = ["Callback", "train"]


def train(
    env: Callable[..., Any] | str,
    cfg: Config | None = None,
    *,
    transform: Any = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> dict[str, Any]:
    """Train one run here on ``env`` and return its summary (the Python entry point of a recipe).

    ``env``: a factory returning a torchrl ``EnvBase`` (unbatched, or batched of size ``num_envs`` when
    the factory takes a ``num_envs`` keyword), or any env id the recipes take (``dmc:cheetah-run``,
    ``Hopper-v5``). ``transform``: a torchrl ``Transform`` or a list of them, applied to a copy per env
    built (training, evaluation). ``cfg``: a preset (default :func:`ppo_pipeline.config.mujoco`, Table 3);
    ``callbacks``: hooks after each update and evaluation (:mod:`ppo_pipeline.run.callbacks`); ``overrides``:
    any config field, e.g. ``total_steps=200_000, name="my-env"``.

    A factory defined in an importable module (not ``__main__``) and no ``transform`` is recorded as
    ``torchrl:module:function`` in ``config.json``, so ``--resume``, ``play`` and ``export`` find it;
    otherwise it is registered in this process only (put the chain inside the factory to resume elsewhere).
    Raises :class:`~ppo_pipeline.errors.ConfigError` (one line) for bad input, before anything starts.
    """
    from .config import mujoco
    from .envs import torchrl as torchrl_envs
    from .run.trainer import run_training

    cfg = cfg if cfg is not None else mujoco()
    if callable(env):
        module, qualname = getattr(env, "__module__", ""), getattr(env, "__qualname__", "")
        if transform is None and module and module != "__main__" and qualname.isidentifier():
            env_id = f"{env_ids.TORCHRL}{module}:{qualname}"
        else:
            env_id = torchrl_envs.register(qualname.replace("<", "").replace(">", "") or "env", env, transform)
    else:
        env_id = env
    cfg = new_run(dataclasses.replace(cfg, env_id=env_id, **overrides))
    print(budget_line(cfg), flush=True)
    return run_training(cfg, callbacks=callbacks)
