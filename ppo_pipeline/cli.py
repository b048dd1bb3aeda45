"""One place that turns :class:`~ppo_pipeline.config.Config` into a command line.

Every dataclass field becomes ``--field-name`` with its default shown in ``--help`` (the Atari-only
fields only in the Atari recipe). Errors are one line on stderr and exit code 2, before any
environment starts; a mistyped option gets a "did you mean".
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .config import Config, ConfigError
from .errors import suggest


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a bad option as a single line (no usage dump), exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        unknown = re.match(r"unrecognized arguments: (\S+)", message)
        if unknown and unknown.group(1).startswith("--"):
            message += suggest(unknown.group(1).split("=")[0], sorted(self._option_string_actions))
        fail(message)


def fail(message: str) -> None:
    """Print ``error: message`` as one line and exit with code 2."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 64,64, got {text!r}") from None


def add_config_options(parser: argparse.ArgumentParser, defaults: Config, *, atari: bool = True) -> None:
    """Add one option per :class:`Config` field, defaulting to the preset's value; ``atari=False``
    leaves out the fields that mean something for Atari games only."""
    groups: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        meta = f.metadata
        if meta.get("atari") and not atari:
            continue
        default = getattr(defaults, f.name)
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = meta.get("help", "") + (f" (default: {shown})" if shown != "" else "")
        flag = "--" + f.name.replace("_", "-")
        group = groups.setdefault(_section(f.name), parser.add_argument_group(_section(f.name)))
        if f.type in ("bool", bool):
            group.add_argument(
                flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default, help=help_text
            )
        elif f.type in ("list", list):
            group.add_argument(flag, dest=f.name, type=_int_list, default=default, metavar="N,N", help=help_text)
        else:
            typ = {"int": int, "float": float, "str": str}.get(f.type, f.type) if isinstance(f.type, str) else f.type
            assert not isinstance(typ, str), f"Config.{f.name}: no option parser for type {typ!r}"
            kwargs: dict[str, Any] = {
                "type": typ,
                "default": default,
                "help": help_text,
                "metavar": typ.__name__.upper(),
            }
            if "choices" in meta:
                kwargs["choices"] = meta["choices"]
                kwargs["metavar"] = "{" + ",".join(meta["choices"]) + "}"
            group.add_argument(flag, dest=f.name, **kwargs)


_SECTIONS = {
    "environment": (
        "env_id",
        "env_module",
        "num_envs",
        "frame_skip",
        "noop_max",
        "frame_stack",
        "episodic_life",
        "clip_reward_sign",
        "normalize_obs",
        "clip_obs",
        "scale_reward",
        "clip_reward",
        "vector_env",
        "env_backend",
        "pixels",
        "collector",
        "collector_workers",
    ),
    "budget and batch": ("total_steps", "num_steps", "epochs", "minibatch_size"),
    "optimisation": (
        "lr",
        "adam_eps",
        "anneal",
        "lr_schedule",
        "lr_kl_target",
        "lr_min",
        "lr_max",
        "max_grad_norm",
        "compile",
    ),
    "objective": (
        "objective",
        "clip_epsilon",
        "kl_target",
        "kl_beta",
        "gamma",
        "gae_lambda",
        "value_coef",
        "entropy_coef",
        "clip_value",
        "normalize_advantage",
    ),
    "model": ("hidden_sizes", "shared_trunk", "policy", "lstm_hidden", "log_std", "log_std_init", "log_std_final"),
    "outputs and tracking": (
        "tensorboard",
        "progress",
        "capture_video",
        "track",
        "wandb_project",
        "wandb_entity",
        "wandb_group",
    ),
}


def _section(name: str) -> str:
    for sec, names in _SECTIONS.items():
        if name in names:
            return sec
    return "run"


def config_from_args(ns: argparse.Namespace) -> Config:
    names = {f.name for f in dataclasses.fields(Config)}
    return Config(**{k: v for k, v in vars(ns).items() if k in names})


def build_parser(
    preset: Callable[..., Config], description: str, prog: str | None = None, *, atari: bool = True
) -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_config_options(parser, preset(), atari=atari)
    return parser


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options that ``argv`` names (whatever their values), e.g. {"lr"}."""
    quiet = copy.deepcopy(parser)
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    return set(vars(quiet.parse_args(list(argv))))


# ------------------------------------------------------------------------------------------------------
# Sweep helpers (used by ppo_pipeline.launch / ppo_pipeline.sweeps.sweep)
# ------------------------------------------------------------------------------------------------------
MAX_SEEDS = 10_000


def parse_seeds(text: str, limit: int = MAX_SEEDS) -> list[int]:
    """``0-4`` -> [0..4], ``0,2,5`` -> [0, 2, 5], ``0-2,7`` -> [0, 1, 2, 7]; order kept, no duplicates.

    Raises :class:`ConfigError` with one line when the text does not parse or names more than
    ``limit`` seeds.
    """
    bad = ConfigError(f"--seeds {text!r} does not parse; use a range like 0-4, a list like 0,2,5, or both (0-2,7)")
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise bad
    ranges = []
    for part in parts:
        lo, dash, hi = part.partition("-")
        if not lo.strip().isdigit() or (dash and not hi.strip().isdigit()):
            raise bad
        a = int(lo)
        b = int(hi) if dash else a
        if b < a:
            raise bad
        ranges.append((a, b))
    if sum(b - a + 1 for a, b in ranges) > limit:
        raise ConfigError(f"--seeds {text!r} names more than {limit:,} seeds; split the sweep")
    seeds: dict[int, None] = {}
    for a, b in ranges:
        seeds.update(dict.fromkeys(range(a, b + 1)))
    return list(seeds)


class GridValues(tuple):
    """Several values of one option (a comma list on the command line): an axis of a sweep's grid."""


# Options that take a comma list in a sweep: every numeric and choice field, and env ids (seeds: --seeds).
NOT_GRID = ("seed",)


def allow_grids(parser: argparse.ArgumentParser, aliases: dict[str, tuple[str, ...]] | None = None) -> None:
    """Let every numeric and choice option of :class:`Config` (and ``--env-id``) take a comma list, parsed
    value by value into :class:`GridValues`; give options extra option strings (``{"env_id": ("--env",)}``)."""
    fields = {f.name: f for f in dataclasses.fields(Config)}
    for action in parser._actions:
        f = fields.get(action.dest)
        if (
            f is None
            or action.dest in NOT_GRID
            or not (f.type in ("int", "float") or "choices" in f.metadata or action.dest == "env_id")
        ):
            continue
        assert callable(action.type), f"--{action.dest}: add_config_options gives it a type"
        action.type = _grid_type(action.type, tuple(action.choices) if action.choices else None)
        if action.choices:
            action.metavar = "{" + ",".join(action.choices) + "}[,...]"
        else:
            action.metavar = f"{action.metavar or 'X'}[,...]"
        action.choices = None
        for alias in (aliases or {}).get(action.dest, ()):
            action.option_strings = [*action.option_strings, alias]
            parser._option_string_actions[alias] = action


def _grid_type(typ: Callable[[str], Any], choices: tuple[str, ...] | None) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        values: list[Any] = []
        for part in [p.strip() for p in text.split(",")] if "," in text else [text]:
            try:
                value = typ(part)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"invalid {getattr(typ, '__name__', 'value')} value: {part!r}"
                ) from None
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(
                    f"invalid choice: {value!r} (choose from {', '.join(repr(c) for c in choices)})"
                )
            if value not in values:
                values.append(value)
        return GridValues(values) if len(values) > 1 else values[0]

    parse.__name__ = getattr(typ, "__name__", "value")
    return parse


def grid_axes(ns: argparse.Namespace) -> dict[str, GridValues]:
    """The options given as comma lists: field -> its values, in field order."""
    return {k: v for k, v in vars(ns).items() if isinstance(v, GridValues)}


def first_values(ns: argparse.Namespace) -> argparse.Namespace:
    """``ns`` with each comma list replaced by its first value (the sweep's base config)."""
    return argparse.Namespace(**{k: v[0] if isinstance(v, GridValues) else v for k, v in vars(ns).items()})
