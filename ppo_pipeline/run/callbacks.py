"""Hooks into a run, so that adding a metric or stopping early needs no copy of the loop (SB3's callbacks).

Pass instances to :class:`ppo_pipeline.run.trainer.Trainer` (or ``ppo_pipeline.train(..., callbacks=[...])``), or
name them on the command line: ``--callbacks my_pkg.hooks:MyHook,other:make_hook`` (a class or a function
called with no arguments; kept in ``config.json``, so a resumed run has them again). Every hook gets a
:class:`Member`: the run (a solo run) or one member of a pack, called once per member after each update and
evaluation. A hook that returns ``False`` stops the run (a pack: every member) after the update in flight, with
a checkpoint, as a signal would: ``--resume`` continues it. Rows may be extended (a key of your own goes to
TensorBoard and W&B; ``metrics.csv`` keeps its fixed columns).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ConfigError


class Member:
    """What a hook sees of one run: ``cfg``, ``run_path``, ``index`` (its place in a pack; 0 for a solo run),
    ``agent`` (its policy as a solo :class:`~ppo_pipeline.algo.policy.Agent`), and the ``trainer`` running it."""

    def __init__(self, trainer: Any, index: int):
        self.trainer, self.index = trainer, index
        self.cfg = trainer.members[index]
        self.run_path: Path = self.cfg.run_path()

    @property
    def agent(self) -> Any:
        agent = self.trainer.ppo.agent
        return agent if self.trainer.P == 1 else agent.member_agent(self.index)


class Callback:
    """Override what you need; every hook is optional."""

    def on_update(self, run: Member, row: dict[str, Any]) -> bool | None:
        """After each update, with its metrics row (``update``, ``step``, losses, episode returns, ...)."""
        return None

    def on_evaluation(self, run: Member, update: int, returns: list[float]) -> bool | None:
        """After each evaluation, with each evaluation episode's return."""
        return None


class StopAfter(Callback):
    """Stop after ``updates`` updates (a clean stop with a checkpoint, as tests and short trials want)."""

    def __init__(self, updates: int):
        self.updates = updates

    def on_update(self, run: Member, row: dict[str, Any]) -> bool | None:
        return row["update"] < self.updates


def load_callbacks(spec: str) -> list[Callback]:
    """``module:Name,module:Name`` (``--callbacks``) -> the hooks, each ``Name()``; :class:`ConfigError` (one line)
    for a name that does not import or does not make a :class:`Callback`."""
    from ..envs.ids import import_user_module

    hooks: list[Callback] = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        module_name, _, name = item.partition(":")
        try:
            factory = getattr(import_user_module(module_name), name) if name else None
        except ImportError as e:
            raise ConfigError(f"callbacks: {item!r}: module {module_name!r} cannot be imported ({e})") from None
        if not callable(factory):
            raise ConfigError(f"callbacks: {item!r} names no class or function (expected module:Name)")
        hook = factory()
        if not isinstance(hook, Callback):
            raise ConfigError(
                f"callbacks: {item!r} made a {type(hook).__name__}, not a ppo_pipeline.run.callbacks.Callback"
            )
        hooks.append(hook)
    return hooks
