"""What a sweep runs: grids over any field, the paper's named experiments, and the plan's cost.

* A grid: comma lists on numeric and choice options (``--clip-epsilon 0.1,0.2,0.3 --lr 3e-4,1e-3``) give
  the cartesian product of their values (:func:`grid`); env ids are their own axis.
* A named experiment (``--experiment table1``): the paper's rows as variants (each a dict of config
  overrides), its envs, seeds and budget (:data:`EXPERIMENTS`).
* A run's name encodes what varies: ``<env>__<objective>[__<field>=<value>...]__s<seed>``.
* ``--dry-run``: :func:`ppo_pipeline.sweeps.cost.estimate` turns the plan into agent steps and core-hours (or
  GPU-hours) from the speed the bench measured for each kind of run (``results/bench/*.json``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import paper
from ..errors import ConfigError

MAX_RUNS = 10_000


@dataclass(frozen=True)
class Experiment:
    name: str
    recipe: str  # the recipe whose preset it uses: mujoco (Table 3) or atari (Table 5)
    description: str
    envs: tuple[str, ...]
    variants: tuple[dict, ...]  # config overrides, one per row of the paper's table
    seeds: tuple[int, ...]
    total_steps: int
    per_env: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()  # env id -> its own config overrides

    def env_overrides(self, env_id: str) -> dict[str, Any]:
        """The config overrides of ``env_id`` in this experiment (e.g. Table 4's 128 actors for flagrun)."""
        return dict(dict(self.per_env).get(env_id, ()))


def _table1_variants() -> tuple[dict, ...]:
    return tuple({"objective": o, **({p: v} if p else {})} for o, p, v, _ in paper.TABLE1)


EXPERIMENTS = {
    "table1": Experiment(
        "table1",
        "mujoco",
        "Table 1: the 11 surrogate-objective rows x 7 MuJoCo tasks x seeds 0-2, 1M steps, Table 3 preset",
        paper.TABLE1_TASKS,
        _table1_variants(),
        (0, 1, 2),
        1_000_000,
    ),
    "table6": Experiment(
        "table6",
        "atari",
        "Table 6: the paper's 49 Atari games x seeds 0-2, 10M steps (40M frames), Table 5 preset",
        tuple(paper.atari_id(g) for g in paper.TABLE6),
        ({"objective": "clip"},),
        (0, 1, 2),
        10_000_000,
    ),
    "figure4": Experiment(
        "figure4",
        "roboschool",
        "Figure 4 (Sec. 6.3): the three Roboschool humanoids as Bullet "
        "ports, 32 / 128 actors, 50M / 100M steps (read off the figure's axes), Table 4 preset; "
        "beside them MuJoCo's Humanoid-v5 at RoboschoolHumanoid's settings, seed 0",
        paper.FIGURE4_TASKS,
        ({"objective": "clip"},),
        (0,),
        50_000_000,
        tuple((env, tuple(o.items())) for env, o in paper.FIGURE4_SETTINGS.items()),
    ),
}


def experiment(name: str, recipe: str) -> Experiment:
    """The named experiment; :class:`ConfigError` (one line) when unknown or run from the wrong recipe."""
    if name not in EXPERIMENTS:
        raise ConfigError(
            f"--experiment {name!r} is unknown; known: "
            + "; ".join(f"{e.name} ({e.description})" for e in EXPERIMENTS.values())
        )
    exp = EXPERIMENTS[name]
    if exp.recipe != recipe:
        raise ConfigError(f"--experiment {name} uses the {exp.recipe} preset: run it with recipes/{exp.recipe}.py")
    return exp


def grid(axes: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of ``axes`` (field -> values) as a list of override dicts (one empty dict
    when there are no axes)."""
    keys = list(axes)
    return [dict(zip(keys, values)) for values in itertools.product(*(axes[k] for k in keys))]


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_name(env_id: str, objective: str, varied: dict[str, Any], seed: int) -> str:
    """``Hopper-v5__clip__clip_epsilon=0.1__s0``: the env, the objective, the other varied fields, the seed."""
    parts = [env_id.replace("/", "-").replace(":", "-"), objective]
    parts += [f"{k}={_fmt(v)}" for k, v in varied.items() if k != "objective"]
    return "__".join(parts) + f"__s{seed}"


def check_size(n: int) -> None:
    if n > MAX_RUNS:
        raise ConfigError(f"the sweep has {n:,} runs; at most {MAX_RUNS:,} (split it)")
