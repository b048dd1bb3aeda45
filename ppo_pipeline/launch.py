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
import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import envs, rundir
from .cli import allow_lists, build_parser, config_from_args, fail, given_options, parse_seeds, split_list
from .config import PRESETS, Config, ConfigError, prepare
from .errors import UserError

# Options that may come with --resume: how the run executes, not what it learns.
RESUME_OPTIONS = ("resume", "device", "torch_threads", "progress", "tensorboard")
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


def recipe_main(preset: str, description: str, argv: Sequence[str] | None = None) -> int:
    """What ``recipes/<preset>.py`` runs: :func:`main` with the preset of that name; Ctrl-C at any
    moment, start-up included, ends with one line and exit code 130."""
    try:
        return main(PRESETS[preset], description, argv, atari_only=preset == "atari")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before training started; nothing to resume\n")
        return 130


def main(preset: Callable[..., Config], description: str, argv: Sequence[str] | None = None, *,
         atari_only: bool = False) -> int:
    """Parse a recipe's command line and run it: one run here, or a sweep (see the module docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(preset, description, atari=atari_only)
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its newest checkpoint (its config.json wins; "
                             "only --device, --torch-threads, --[no-]progress, --[no-]tensorboard may be given "
                             "with it); a checkpoint file resumes from that checkpoint")
    add_sweep_options(parser)
    ns = parser.parse_args(argv)
    if _is_sweep(ns):
        if ns.resume is not None:
            fail("--resume takes one run directory; to continue a sweep use `python -m ppo_pipeline.sweep resume DIR`")
        return sweep_main(ns, argv, atari_only=atari_only)
    try:
        if ns.resume is not None:
            cfg, resume_from = _resume_plan(ns, parser, argv, atari_only)
        else:
            cfg, resume_from = prepare(config_from_args(ns), atari_only=atari_only), None
            envs.check(cfg)
            _refuse_reuse(cfg.run_path())
    except UserError as e:
        fail(str(e))
        raise  # unreachable
    return run(cfg, resume_from, resume_hint=f"{sys.argv[0]} --resume {cfg.run_path()}")


def _refuse_reuse(run_path: Path) -> None:
    """A fresh run never writes into a directory that already holds a run (its logs, its checkpoints)."""
    if (run_path / rundir.CONFIG).exists():
        raise ConfigError(f"run directory {str(run_path)!r} already holds a run; continue it with "
                          f"--resume {run_path}, or start another with --name NEW_NAME (or another --seed/--run-dir)")


def _resume_plan(ns: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str],
                 atari_only: bool) -> tuple[Config, Path | None]:
    """The config and checkpoint that ``--resume RUN_DIR`` (or ``--resume CHECKPOINT``) continues from.

    A run directory with a config but no checkpoint yet (stopped during start-up) starts from the
    beginning: nothing was trained, nothing is lost.
    """
    from . import checkpoint

    if not ns.resume.strip():
        raise ConfigError("--resume '' is empty; give the run directory to continue (e.g. runs/<name>)")
    extra = sorted(given_options(parser, argv) - set(RESUME_OPTIONS))
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise ConfigError(f"{flag} cannot be given with --resume: the run continues with its own config.json "
                          f"(edit it to change {extra[0]}); allowed with --resume: --device, --torch-threads, "
                          f"--[no-]progress, --[no-]tensorboard")
    target = Path(ns.resume)
    run_dir = target.parent if target.is_file() else target
    cfg_path = run_dir / rundir.CONFIG
    if not cfg_path.is_file():
        raise ConfigError(f"--resume {str(target)!r}: no config.json there (not a run directory)")
    try:
        saved = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise ConfigError(f"--resume {str(run_dir)!r}: config.json is not valid JSON") from None
    cfg = Config.from_json(saved, str(cfg_path))
    cfg = dataclasses.replace(cfg, run_dir=str(run_dir.parent), name=run_dir.name,
                              **{k: getattr(ns, k) for k in RESUME_OPTIONS[1:] if k in given_options(parser, argv)})
    cfg = prepare(cfg, atari_only=atari_only)
    envs.check(cfg)
    resume_from = target if target.is_file() else checkpoint.latest(run_dir)
    if resume_from is None:
        print(f"no checkpoint in {run_dir} yet (stopped during start-up): starting the run from the beginning")
    else:
        try:
            checkpoint.load_for_run(resume_from, cfg.to_dict())
        except checkpoint.CheckpointError as e:
            intact = checkpoint.previous_intact(resume_from, cfg.to_dict())
            raise checkpoint.CheckpointError(f"{e}; the previous one is intact: resume from it with --resume {intact}"
                                             if intact else str(e)) from None
        checkpoint.discard_newer(resume_from)
    return cfg, resume_from


def run(cfg: Config, resume_from: Path | None = None, *, resume_hint: str | None = None) -> int:
    """Train one prepared run here. Ctrl-C / SIGTERM stop it after the update in flight, checkpointed,
    with one line printed at once; a second Ctrl-C stops at once (the newest checkpoint stays valid)."""
    from .trainer import TrainingError, TrainingInterrupted, run_training

    hint = resume_hint or f"--resume {cfg.run_path()}"
    print(("resuming " if resume_from is not None else "") + cfg.budget_line(), flush=True)

    def on_signal(signum: int) -> None:
        sys.stderr.write(("\n" if cfg.progress else "") + f"{_SIGNAL_WORDS.get(signum, signal.Signals(signum).name)}: stopping after the update "
                         f"in flight, with a checkpoint; continue with: {hint}\n")
        sys.stderr.flush()

    try:
        summary = run_training(cfg, resume_from, on_signal=on_signal)
    except TrainingError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except TrainingInterrupted:
        return 130           # the line was printed when the signal came
    except KeyboardInterrupt:     # during start-up, or a second Ctrl-C
        from . import checkpoint

        saved = checkpoint.latest(cfg.run_path())
        sys.stderr.write(f"stopped at once; the newest checkpoint ({saved.name}) stays valid; continue with: {hint}\n"
                         if saved else f"interrupted during start-up; nothing was trained yet; start again with: {hint}\n")
        return 130
    last100 = summary["last100_return_mean"]
    final = summary["final_eval_return_mean"]
    print(f"run {cfg.run_path()}: final eval return {'n/a' if final is None else f'{final:.1f}'}, "
          f"last-100 training return {'n/a (no episode finished)' if last100 is None else f'{last100:.1f}'}, "
          f"{summary['wall_time_s']:.0f} s")
    return 0


_SIGNAL_WORDS = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


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
