"""Entry point shared by the recipes: parse a preset's command line, validate, run -- one run or a sweep.

One run (the default)::

    python recipes/mujoco.py --env-id Hopper-v5 --seed 3
    python recipes/mujoco.py --resume runs/Hopper-v5__clip__s3      # continue from its newest checkpoint

A sweep, one run per (env, objective, seed), when ``--seeds`` is given, ``--env``/``--env-id`` or
``--objective`` hold comma lists, or ``--launcher slurm`` is asked for::

    python recipes/mujoco.py --launcher slurm --cluster NAME --seeds 0-4 \\
        --env Hopper-v5,Walker2d-v5 --objective clip,kl_adaptive

``--launcher slurm`` submits a submitit job array into a sweep directory (``--sweep-dir``, default
``sweeps/<time>``) and returns; ``--launcher local`` runs the same sweep here, one run after the other.
See :mod:`ppo_pipeline.sweep` for the directory layout and ``status`` / ``resume`` / ``cancel``.

Bad input exits with code 2 and one line on stderr before any environment starts or any job is
submitted; a training failure (non-finite loss) exits with code 1 and one line naming the update and
the checkpoint kept; a run stopped by SIGTERM/SIGINT checkpoints first and exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import checkpoint
from .cli import allow_lists, build_parser, config_from_args, fail, parse_seeds, split_list
from .config import Config, ConfigError, prepare
from .errors import UserError

SWEEP_OPTIONS = ("seeds", "cluster", "sweep_dir", "max_parallel")


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """--launcher, --cluster, --seeds, --sweep-dir, --max-parallel; comma lists for --env-id/--objective."""
    g = parser.add_argument_group("sweep (envs x objectives x seeds; see python -m ppo_pipeline.sweep)")
    g.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: run here (default); slurm: submit a job array with submitit")
    g.add_argument("--cluster", default=None, metavar="NAME",
                   help="cluster profile slurm/clusters/NAME.toml for --launcher slurm (default: local)")
    g.add_argument("--seeds", default=None, metavar="SPEC",
                   help="seeds of a sweep: a range 0-4, a list 0,2,5, or both 0-2,7 (overrides --seed)")
    g.add_argument("--sweep-dir", default=None, metavar="DIR",
                   help="new sweep directory (default: sweeps/<date-time>); must not exist")
    g.add_argument("--max-parallel", type=int, default=None, metavar="N",
                   help="at most N runs at once (SLURM array %%N; default: the cluster profile's array_parallelism)")
    allow_lists(parser, {"env_id": ("--env",), "objective": ()})


def _is_sweep(ns: argparse.Namespace) -> bool:
    return (ns.launcher != "local" or any(getattr(ns, k) is not None for k in SWEEP_OPTIONS)
            or "," in ns.env_id or "," in ns.objective)


def main(preset: Callable[..., Config], description: str, argv: Sequence[str] | None = None, *,
         atari_only: bool = False) -> int:
    parser = build_parser(preset, description)
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its latest checkpoint (its config.json wins)")
    add_sweep_options(parser)
    ns = parser.parse_args(argv)
    if _is_sweep(ns):
        if ns.resume:
            fail("--resume takes one run directory; to continue a sweep use `python -m ppo_pipeline.sweep resume DIR`")
        return sweep_main(ns, list(sys.argv[1:] if argv is None else argv), atari_only=atari_only)
    resume_from = None
    if ns.resume:
        run_dir = Path(ns.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            fail(f"--resume {str(run_dir)!r}: no config.json there (not a run directory)")
        resume_from = checkpoint.latest(run_dir)
        if resume_from is None:
            fail(f"--resume {str(run_dir)!r}: no checkpoint-*.pt there")
        try:
            saved = json.loads(cfg_path.read_text())
        except ValueError:
            fail(f"--resume {str(run_dir)!r}: config.json is not valid JSON")
        cfg = Config.from_dict(saved)
        cfg.run_dir, cfg.name = str(run_dir.parent), run_dir.name
    else:
        cfg = config_from_args(ns)
    try:
        cfg = prepare(cfg, atari_only=atari_only)
        if resume_from is not None:
            checkpoint.load_for_run(resume_from, cfg.to_dict())
    except UserError as e:
        fail(str(e))
    return run(cfg, resume_from)


def run(cfg: Config, resume_from: Path | None = None) -> int:
    """Train one validated run here; SIGTERM/SIGINT stop it after the update in flight, checkpointed."""
    from .trainer import TrainingError, TrainingInterrupted, run_training

    try:
        summary = run_training(cfg, resume_from)
    except TrainingError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except TrainingInterrupted as e:
        sys.stderr.write(f"interrupted: {e}; continue with --resume {cfg.run_path()}\n")
        return 130
    print(f"run {cfg.run_path()}: final eval return {summary['final_eval_return_mean']}, "
          f"last-100 training return {summary['last100_return_mean']}, {summary['wall_time_s']:.0f} s")
    return 0


def sweep_main(ns: argparse.Namespace, argv: Sequence[str], *, atari_only: bool = False) -> int:
    """Plan, check and start a sweep; every bad input is one line and exit 2 before anything starts."""
    from . import slurm, sweep

    try:
        seeds = parse_seeds(ns.seeds) if ns.seeds is not None else [ns.seed]
        env_ids = split_list(ns.env_id)
        objectives = split_list(ns.objective)
        if not env_ids or not objectives:
            raise ConfigError("--env-id and --objective need at least one value each")
        if ns.name:
            raise ConfigError("--name names one run; a sweep names its runs <env>__<objective>__s<seed>")
        if ns.max_parallel is not None and ns.max_parallel < 1:
            raise ConfigError(f"--max-parallel={ns.max_parallel} must be >= 1")
        if ns.launcher == "local" and ns.cluster is not None:
            raise ConfigError("--cluster applies to --launcher slurm only")
        profile = slurm.load_cluster(ns.cluster or "local") if ns.launcher == "slurm" else None
        sweep_dir = Path(ns.sweep_dir or Path("sweeps") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        base = dataclasses.replace(config_from_args(ns), env_id=env_ids[0], objective=objectives[0])
        runs = sweep.plan(base, env_ids, objectives, seeds, sweep_dir, atari_only=atari_only)
        if profile is not None:
            slurm.check_slurm(profile)
        manifest = sweep.create(sweep_dir, runs, launcher=ns.launcher, cluster=profile.name if profile else None,
                                max_parallel=ns.max_parallel, argv=argv)
    except UserError as e:
        fail(str(e))
        raise  # unreachable
    names = [r["name"] for r in runs]
    if ns.launcher == "slurm":
        ids = sweep.submit_slurm(sweep_dir, manifest, names)
        print(f"submitted {len(ids)} run(s) as job array {ids[0].split('_')[0]} "
              f"(at most {ns.max_parallel or profile.array_parallelism} at once) into {sweep_dir}")
        print(f"follow with: python -m ppo_pipeline.sweep status {sweep_dir}")
        return 0
    print(f"sweep of {len(names)} run(s) in {sweep_dir}, run here one after the other")
    rc = sweep.run_local(sweep_dir, manifest, names)
    print(sweep.format_table(sweep.status(sweep_dir)))
    return rc
