"""The random-policy score r_e of each env (Table 1's normalization), measured once and cached."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..algo.evaluation import random_score
from ..config import Config
from .runs import Run
from .stats import mean

# Config fields that define the env stack, hence the random-policy score (the cache key).
ENV_FIELDS = ("env_id", "num_envs", "frame_skip", "noop_max", "frame_stack", "episodic_life")
CACHE = "random_scores.json"


@dataclass
class RandomScore:
    env_id: str
    value: float  # mean over seeds of the per-seed episode mean
    source: str  # "given", "measured", "cached", or "unavailable: ..."
    per_seed: dict[int, float] = field(default_factory=dict)
    episodes: int = 0


def _cache_key(cfg: dict[str, Any], seed: int, episodes: int) -> str:
    env = {k: cfg.get(k) for k in ENV_FIELDS}
    return json.dumps({"env": env, "seed": seed, "episodes": episodes}, sort_keys=True)


def random_scores(
    runs: Sequence[Run],
    episodes: int,
    cache_path: Path | None,
    given: dict[str, float] | None = None,
    log: TextIO | None = None,
) -> dict[str, RandomScore]:
    """The random-policy score r_e of every env: ``given`` ones as they are, the others measured per
    seed of that env's runs (or read from the JSON cache at ``cache_path``) and averaged over seeds.

    ``episodes=0`` measures nothing: envs without a given score get none (normalized scores n/a).
    """
    log = log or sys.stderr
    given = dict(given or {})
    cache: dict[str, float] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            for e in json.loads(cache_path.read_text())["entries"]:
                cache[_cache_key(e["env"], int(e["seed"]), int(e["episodes"]))] = float(e["score"])
        except (OSError, ValueError, KeyError, AttributeError, TypeError):
            log.write(f"warning: ignoring unreadable cache {cache_path}\n")
    by_env: dict[str, list[Run]] = {}
    for r in runs:
        by_env.setdefault(r.env_id, []).append(r)
    out: dict[str, RandomScore] = {}
    for env_id, env_runs in sorted(by_env.items()):
        if env_id in given:
            out[env_id] = RandomScore(env_id, float(given[env_id]), "given")
            continue
        if episodes <= 0:
            out[env_id] = RandomScore(env_id, math.nan, "unavailable: not measured (--random-episodes 0)")
            continue
        cfg = min(env_runs, key=lambda r: str(r.path)).config  # the env stack of this env's runs
        per_seed: dict[int, float] = {}
        sources = set()
        try:
            for seed in sorted({r.seed for r in env_runs}):
                key = _cache_key(cfg, seed, episodes)
                if key in cache:
                    per_seed[seed] = cache[key]
                    sources.add("cached")
                    continue
                log.write(f"measuring the random-policy score of {env_id}, seed {seed} ({episodes} episodes)\n")
                per_seed[seed] = cache[key] = random_score(Config.from_dict(cfg), seed, episodes)
                sources.add("measured")
        except Exception as e:  # a missing env or ROM must not sink the whole report
            msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            out[env_id] = RandomScore(env_id, math.nan, f"unavailable: {msg}")
            log.write(f"warning: random-policy score of {env_id} could not be measured: {msg}\n")
            continue
        out[env_id] = RandomScore(
            env_id, mean(per_seed.values()), "measured" if "measured" in sources else "cached", per_seed, episodes
        )
    if cache_path is not None and cache:
        entries = [{**json.loads(k), "score": v} for k, v in sorted(cache.items())]
        cache_path.write_text(
            json.dumps(
                {
                    "about": "mean return of uniform-random-action episodes per env stack "
                    "and seed (python -m ppo_pipeline.report)",
                    "entries": entries,
                },
                indent=1,
            )
            + "\n"
        )
    return out
