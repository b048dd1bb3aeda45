"""Which runs of a sweep can train together, and the packs they form (``--pack N``).

Runs share a pack when everything that shapes the computation is the same: the env (id, module, backend,
wrappers' settings), the batch geometry (num_envs, num_steps, epochs, minibatch size), the network, the
schedules and coefficients, the budget and the device. They may differ in the seed and in the objective
with its own hyperparameter (``objective``, ``clip_epsilon``, ``kl_target``, ``kl_beta``: one member-wise
objective covers them, :mod:`.objective`). Any observation space a solo run takes packs: vectors, pixels and
``Dict`` observations (its encoder stacked like any network, :mod:`.stacked`). Runs that cannot share are put in
other packs; runs that cannot train in any pack (an LSTM, torchrl's collector) train alone, as packs of one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..config import Config
from ..errors import ConfigError

MEMBER_FIELDS = ("seed", "objective", "clip_epsilon", "kl_target", "kl_beta")
# fields that say where a run's files go or how it is shown: they differ per member without changing the math
PER_RUN_FIELDS = (
    "name",
    "run_dir",
    "progress",
    "tensorboard",
    "track",
    "wandb_project",
    "wandb_entity",
    "wandb_group",
    "capture_video",
)


def why_solo(cfg: Config) -> str | None:
    """Why ``cfg``'s run cannot train in a pack (None when it can)."""
    if cfg.policy != "mlp":
        return (
            f"its policy is {cfg.policy}: packs stack feed-forward policies (MLPs, the Nature CNN, a Dict's encoder), "
            "not a recurrent state carried per env nor whole-trajectory minibatches"
        )
    if cfg.collector != "lean":
        return "it uses torchrl's collector (packs step their envs with their own)"
    if cfg.capture_video:
        return "--capture-video records a solo run's evaluation"
    if cfg.lr_schedule != "alpha" or cfg.log_std != "learned":
        return "its step size or log stdev follows a schedule of Table 4 (packs train alpha schedules only)"
    return None


def pack_key(cfg: Config) -> tuple:
    """What members of one pack must share: every field but the member and per-run ones."""
    d = dataclasses.asdict(cfg)
    return tuple((k, repr(v)) for k, v in sorted(d.items()) if k not in MEMBER_FIELDS + PER_RUN_FIELDS)


def group(runs: Sequence[dict[str, Any]], size: int) -> list[list[str]]:
    """The run names of each pack, in plan order: runs that can share are taken ``size`` at a time; a run
    that cannot train in a pack is a pack of one. ``runs``: the sweep plan's entries ({"name", "config"})."""
    if size < 1:
        raise ConfigError(f"--pack {size} must be >= 1 (runs per pack; 1 trains every run alone)")
    groups: dict[tuple, list[str]] = {}
    packs: list[list[str]] = []
    for run in runs:
        cfg = Config.from_dict(run["config"])
        if size == 1 or why_solo(cfg):
            packs.append([run["name"]])
            continue
        groups.setdefault(pack_key(cfg), []).append(run["name"])
    for names in groups.values():
        packs.extend(names[i : i + size] for i in range(0, len(names), size))
    order = {r["name"]: i for i, r in enumerate(runs)}
    return sorted(packs, key=lambda names: order[names[0]])


ENV_BYTES = 64 * 2**20  # a generous allowance per env (a MuJoCo model and data, wrappers, pool slot)
STEP_BYTES_FACTOR = 4  # the batch, its per-epoch gather and a minibatch's activations, roughly


def memory_needed(cfg: Config, members: int, obs_numel: int = 1024) -> int:
    """Bytes a pack of ``members`` runs of ``cfg`` needs, roughly and on the safe side: its envs and its batch."""
    per_step = 4 * (2 * obs_numel + 64)  # float32 observation (and next), actions, values, flags ...
    return members * cfg.num_envs * (ENV_BYTES + STEP_BYTES_FACTOR * cfg.num_steps * per_step)


def memory_available() -> int | None:
    """This machine's available memory in bytes (``MemAvailable``), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def plan_packs(runs: Sequence[dict[str, Any]], size: int, *, explicit: bool) -> list[list[str]]:
    """:func:`group`, with the checks of ``--pack``: one :class:`ConfigError` line for a run that cannot train in
    a pack when the runs were named on the command line (``explicit``; an experiment's such runs train alone),
    and for a pack too large for this machine's memory."""
    packs = group(runs, size)
    by_name = {r["name"]: Config.from_dict(r["config"]) for r in runs}
    if size > 1 and explicit:
        for names in packs:
            cfg = by_name[names[0]]
            why = len(names) == 1 and why_solo(cfg)
            if why:
                raise ConfigError(
                    f"--pack {size}: run {names[0]} cannot train in a pack ({why}); drop --pack or that run"
                )
    free = memory_available()
    if free is not None:
        for names in packs:
            need = memory_needed(by_name[names[0]], len(names))
            if len(names) > 1 and need > 0.8 * free:
                raise ConfigError(
                    f"--pack {size}: a pack of {len(names)} runs needs about {need / 2**30:.1f} GiB, more "
                    f"than this machine has free ({free / 2**30:.1f} GiB); use a smaller --pack"
                )
    return packs


def describe(packs: Sequence[Sequence[str]]) -> list[str]:
    """The ``--dry-run`` lines of a sweep's packs."""
    packed = [p for p in packs if len(p) > 1]
    alone = sum(len(p) == 1 for p in packs)
    lines = [
        f"packs: {len(packed)} of "
        + ", ".join(f"{n}" for n in sorted({len(p) for p in packed}))
        + " runs"
        + (f" (one process / SLURM job each), {alone} run(s) alone" if alone else " (one process / SLURM job each)")
    ]
    lines += [f"  pack of {len(p)}: {p[0]}, ..., {p[-1]}" for p in packed[:3]]
    return lines if packed else [f"packs: none ({alone} run(s) alone)"]
