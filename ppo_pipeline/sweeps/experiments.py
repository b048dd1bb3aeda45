"""What a sweep runs: grids over any field, the paper's named experiments, and the plan's cost.

* A grid: comma lists on numeric and choice options (``--clip-epsilon 0.1,0.2,0.3 --lr 3e-4,1e-3``) give
  the cartesian product of their values (:func:`grid`); env ids are their own axis.
* A named experiment (``--experiment table1``): the paper's rows as variants (each a dict of config
  overrides), its envs, seeds and budget (:data:`EXPERIMENTS`).
* A run's name encodes what varies: ``<env>__<objective>[__<field>=<value>...]__s<seed>``.
* ``--dry-run``: :func:`estimate` turns the plan into agent steps and core-hours (or GPU-hours) from the
  speed the bench measured on this machine (``results/bench/*.json``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .. import paper
from ..errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = REPO_ROOT / "results" / "bench"
MAX_RUNS = 10_000


@dataclass(frozen=True)
class Experiment:
    name: str
    recipe: str                      # the recipe whose preset it uses: mujoco (Table 3) or atari (Table 5)
    description: str
    envs: tuple[str, ...]
    variants: tuple[dict, ...]       # config overrides, one per row of the paper's table
    seeds: tuple[int, ...]
    total_steps: int
    per_env: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()   # env id -> its own config overrides

    def env_overrides(self, env_id: str) -> dict[str, Any]:
        """The config overrides of ``env_id`` in this experiment (e.g. Table 4's 128 actors for flagrun)."""
        return dict(dict(self.per_env).get(env_id, ()))


def _table1_variants() -> tuple[dict, ...]:
    return tuple({"objective": o, **({p: v} if p else {})} for o, p, v, _ in paper.TABLE1)


EXPERIMENTS = {
    "table1": Experiment("table1", "mujoco", "Table 1: the 11 surrogate-objective rows x 7 MuJoCo tasks x seeds 0-2, "
                         "1M steps, Table 3 preset", paper.TABLE1_TASKS, _table1_variants(), (0, 1, 2), 1_000_000),
    "table6": Experiment("table6", "atari", "Table 6: the paper's 49 Atari games x seeds 0-2, 10M steps (40M frames), "
                         "Table 5 preset", tuple(paper.atari_id(g) for g in paper.TABLE6), ({"objective": "clip"},),
                         (0, 1, 2), 10_000_000),
    "figure4": Experiment("figure4", "roboschool", "Figure 4 (Sec. 6.3): the three Roboschool humanoids as Bullet "
                          "ports, 32 / 128 actors, 50M / 100M steps (read off the figure's axes), Table 4 preset; "
                          "beside them MuJoCo's Humanoid-v5 at RoboschoolHumanoid's settings, seed 0",
                          paper.FIGURE4_TASKS, ({"objective": "clip"},), (0,), 50_000_000,
                          tuple((env, tuple(o.items())) for env, o in paper.FIGURE4_SETTINGS.items())),
}


def experiment(name: str, recipe: str) -> Experiment:
    """The named experiment; :class:`ConfigError` (one line) when unknown or run from the wrong recipe."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"--experiment {name!r} is unknown; known: "
                          + "; ".join(f"{e.name} ({e.description})" for e in EXPERIMENTS.values()))
    exp = EXPERIMENTS[name]
    if exp.recipe != recipe:
        raise ConfigError(f"--experiment {name} uses the {exp.recipe} preset: run it with recipes/{exp.recipe}.py")
    return exp


def grid(axes: dict[str, Sequence[Any]]) -> list[dict[str, Any]]:
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


# ------------------------------------------------------------------------------------------------------
# --dry-run: the cost of a plan
# ------------------------------------------------------------------------------------------------------
def family(env_id: str, is_atari: bool) -> str:
    """The bench workload whose speed stands for ``env_id``'s: pong (Atari), cartpole (classic control),
    hopper (everything else: MuJoCo, DMControl, user envs)."""
    if is_atari:
        return "pong"
    return "cartpole" if env_id.split("-v")[0] in ("CartPole", "Acrobot", "MountainCar", "Pendulum",
                                                    "MountainCarContinuous") else "hopper"


def measured_speed(gpu: bool) -> tuple[dict[str, float], str, int] | None:
    """The newest bench figures of this checkout (``results/bench/*.json``) for CPU or GPU:
    (workload -> our median steps/s, the file, the cores it ran on); None when there are none."""
    # newest first by name (bench-DATE-...json): a clone's file times are all the checkout's
    files = sorted(BENCH_DIR.glob("*.json"), reverse=True) if BENCH_DIR.is_dir() else []
    for path in files:
        try:
            data = json.loads(path.read_text())
            on_gpu = data["machine"].get("gpu", "none") != "none"
            if on_gpu != gpu or "results" not in data:
                continue
            speeds = {k: sorted(r["sps"] for r in v["ours"])[len(v["ours"]) // 2] for k, v in data["results"].items()}
            return speeds, str(path.relative_to(REPO_ROOT)), int(data["machine"]["cores"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def estimate(runs: Sequence[dict[str, Any]], *, gpu: bool) -> list[str]:
    """Lines describing a plan (the runs of :func:`ppo_pipeline.sweeps.sweep.plan`): runs, agent steps, and hours
    from measured speed."""
    from ..config import Config
    from ..envs.ids import is_atari

    steps: dict[str, int] = {}
    for r in runs:
        cfg = Config.from_dict(r["config"])
        fam = family(cfg.env_id, is_atari(cfg.env_id))
        steps[fam] = steps.get(fam, 0) + cfg.steps_run
    total = sum(steps.values())
    lines = [f"plan: {len(runs):,} run(s), {total:,} agent steps in all"]
    speed = measured_speed(gpu)
    if speed is None:
        lines.append(f"no measured {'GPU' if gpu else 'CPU'} speed in results/bench/ to estimate hours from: "
                     f"python -m ppo_pipeline.bench --json results/bench/bench-DATE-{'gpu' if gpu else 'cpu'}.json")
        return lines
    sps, source, cores = speed
    hours = 0.0
    for fam, n in sorted(steps.items()):
        if fam not in sps:
            lines.append(f"  {fam}-like runs: no {fam} figure in {source}")
            continue
        h = n / sps[fam] / 3600
        hours += h
        lines.append(f"  {fam}-like runs: {n:,} steps at {sps[fam]:,.0f} steps/s = {h:,.1f} h of one run at a time")
    unit = "GPU-hours" if gpu else f"core-hours ({cores} cores per run, as measured)"
    lines.append(f"estimated: {hours * (1 if gpu else cores):,.1f} {unit}, from {source}")
    return lines
