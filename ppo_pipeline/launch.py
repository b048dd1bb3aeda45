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
See :mod:`ppo_pipeline.sweeps.sweep` for the directory layout and ``status`` / ``resume`` / ``cancel``.

Bad input exits with code 2 and one line on stderr before any environment starts or any job is
submitted; a training failure (non-finite loss) exits with code 1 and one line naming the update and
the checkpoint kept; a run stopped by SIGTERM/SIGINT checkpoints first and exits with 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import envs, process, rundir
from .cli import (
    allow_grids,
    build_parser,
    config_from_args,
    fail,
    first_values,
    given_options,
    grid_axes,
    parse_seeds,
)
from .config import PRESETS, Config, ConfigError
from .errors import UserError
from .pack.plan import describe, plan_packs
from .run.prepare import budget_line, check_envs, prepare
from .sweeps import experiments

# Options that may come with --resume: how the run executes, not what it learns (over ranks, another W or
# --rank-stats continues from the same state, not bit-exact: said when resuming).
RESUME_OPTIONS = (
    "resume",
    "device",
    "torch_threads",
    "progress",
    "tensorboard",
    "nproc_per_node",
    "rank_stats",
    "rank_learn",
)
SWEEP_OPTIONS = ("seeds", "cluster", "sweep_dir", "max_parallel", "experiment", "pack")


def add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """--launcher, --cluster, --seeds, --sweep-dir, --max-parallel, --experiment, --dry-run; comma lists
    (grid axes) on every numeric and choice option and on --env-id (alias --env)."""
    g = parser.add_argument_group("sweep (a grid over any options x envs x seeds; see python -m ppo_pipeline.sweep)")
    g.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: run here, one run after the other (default); slurm: submit a job array with submitit",
    )
    g.add_argument(
        "--cluster",
        default=None,
        metavar="NAME",
        help="cluster profile slurm/clusters/NAME.toml for --launcher slurm (default: local)",
    )
    g.add_argument(
        "--seeds",
        default=None,
        metavar="SPEC",
        help="seeds of a sweep: a range 0-4, a list 0,2,5, or both 0-2,7 (overrides --seed)",
    )
    g.add_argument(
        "--experiment",
        default=None,
        metavar="NAME",
        help="a paper experiment: table1 (recipes/mujoco.py) or table6 (recipes/atari.py); --env-id "
        "(a subset), --seeds and --total-steps override its own (default: none)",
    )
    g.add_argument(
        "--dry-run",
        action="store_true",
        default=False,
        help="print the plan (runs, agent steps, estimated hours from measured speed) and exit "
        "without starting anything (default: off)",
    )
    g.add_argument(
        "--sweep-dir",
        default=None,
        metavar="DIR",
        help="new sweep directory (default: sweeps/<date-time>); must not exist",
    )
    g.add_argument(
        "--max-parallel",
        type=int,
        default=None,
        metavar="N",
        help="at most N jobs at once (SLURM array %%N; default: the cluster profile's array_parallelism)",
    )
    g.add_argument(
        "--pack",
        type=int,
        default=None,
        metavar="N",
        help="train the runs that can share (same env, batch geometry, network, budget; any seed and "
        "objective) in packs of at most N, each pack one batched computation in one process / SLURM "
        "job (default: 1, every run alone)",
    )
    allow_grids(parser, {"env_id": ("--env",)})


def _is_sweep(ns: argparse.Namespace) -> bool:
    return (
        ns.launcher != "local"
        or ns.dry_run
        or any(getattr(ns, k) is not None for k in SWEEP_OPTIONS)
        or bool(grid_axes(ns))
    )


def recipe_main(preset: str, description: str, argv: Sequence[str] | None = None) -> int:
    """What ``recipes/<preset>.py`` runs: :func:`main` with the preset of that name; Ctrl-C at any
    moment, start-up included, ends with one line and exit code 130. The process is the command's own: no
    garbage-collector passes over the imported modules while it starts and when it exits, and its start-up is the
    first look at the cores that are free (:mod:`.process`)."""
    try:
        process.start_up()
        return main(PRESETS[preset], description, argv, atari_only=preset == "atari", standalone=True)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted before training started; nothing to resume\n")
        return 130
    finally:
        process.exiting()


def main(
    preset: Callable[..., Config],
    description: str,
    argv: Sequence[str] | None = None,
    *,
    atari_only: bool = False,
    standalone: bool = False,
) -> int:
    """Parse a recipe's command line and run it: one run here, or a sweep (see the module docstring).
    ``standalone``: this process is the command's own (a recipe's), see :func:`run`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(preset, description, atari=atari_only)
    parser.add_argument(
        "--resume",
        metavar="RUN_DIR",
        default=None,
        help="continue the run in RUN_DIR from its newest checkpoint (its config.json wins; "
        "only --device, --torch-threads, --[no-]progress, --[no-]tensorboard, --nproc-per-node may be given "
        "with it); a checkpoint file resumes from that checkpoint",
    )
    add_sweep_options(parser)
    ns = parser.parse_args(argv)
    if _is_sweep(ns):
        if ns.resume is not None:
            fail("--resume takes one run directory; to continue a sweep use `python -m ppo_pipeline.sweep resume DIR`")
        recipe = next((k for k, v in PRESETS.items() if v is preset), "")
        process.started()  # a sweep's planning and runs: the collector as usual
        return sweep_main(ns, parser, argv, recipe=recipe, atari_only=atari_only)
    try:
        if ns.resume is not None:
            cfg, resume_from = _resume_plan(ns, parser, argv, atari_only)
        else:
            cfg, resume_from = new_run(config_from_args(ns), atari_only=atari_only), None
    except UserError as e:
        fail(str(e))
        raise  # unreachable
    if cfg.nodes > 1 and "RANK" not in os.environ:
        fail(
            f"nodes={cfg.nodes} needs --launcher slurm (one job of nodes x nproc_per_node tasks), or torchrun on each node"
        )
    return run(cfg, resume_from, resume_hint=f"{sys.argv[0]} --resume {cfg.run_path()}", standalone=standalone)


def new_run(cfg: Config, *, atari_only: bool = False) -> Config:
    """The prepared config of a fresh run, its envs checked and its run directory free; :class:`UserError`
    (one line) otherwise. Nothing is built or written."""
    cfg = prepare(cfg, atari_only=atari_only)
    check_envs(cfg)
    if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 alone (the others find its directory)
        _refuse_reuse(cfg.run_path())
    return cfg


def _refuse_reuse(run_path: Path) -> None:
    """A fresh run never writes into a directory that already holds a run (its logs, its checkpoints)."""
    if (run_path / rundir.CONFIG).exists():
        raise ConfigError(
            f"run directory {str(run_path)!r} already holds a run; continue it with "
            f"--resume {run_path}, or start another with --name NEW_NAME (or another --seed/--run-dir)"
        )


def _resume_plan(
    ns: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str], atari_only: bool
) -> tuple[Config, Path | None]:
    """The config and checkpoint that ``--resume RUN_DIR`` (or ``--resume CHECKPOINT``) continues from.

    A run directory with a config but no checkpoint yet (stopped during start-up) starts from the
    beginning: nothing was trained, nothing is lost.
    """
    from .run import checkpoint

    if not ns.resume.strip():
        raise ConfigError("--resume '' is empty; give the run directory to continue (e.g. runs/<name>)")
    extra = sorted(given_options(parser, argv) - set(RESUME_OPTIONS))
    if extra:
        flag = "--" + extra[0].replace("_", "-")
        raise ConfigError(
            f"{flag} cannot be given with --resume: the run continues with its own config.json "
            f"(edit it to change {extra[0]}); allowed with --resume: --device, --torch-threads, "
            f"--[no-]progress, --[no-]tensorboard, --nproc-per-node"
        )
    target = Path(ns.resume)
    run_dir = target.parent if target.is_file() else target
    cfg = rundir.read_config(run_dir, "--resume")
    cfg = dataclasses.replace(
        cfg, **{k: getattr(ns, k) for k in RESUME_OPTIONS[1:] if k in given_options(parser, argv)}
    )
    cfg = prepare(cfg, atari_only=atari_only)
    check_envs(cfg)
    resume_from = target if target.is_file() else checkpoint.latest(run_dir)
    if resume_from is None:
        print(f"no checkpoint in {run_dir} yet (stopped during start-up): starting the run from the beginning")
    else:
        try:
            saved = checkpoint.load_for_run(resume_from, cfg.to_dict())["config"]
        except checkpoint.CheckpointError as e:
            intact = checkpoint.previous_intact(resume_from, cfg.to_dict())
            raise checkpoint.CheckpointError(
                f"{e}; the previous one is intact: resume from it with --resume {intact}" if intact else str(e)
            ) from None
        checkpoint.discard_newer(resume_from)
        was, now = saved.get("nproc_per_node", 1) * saved.get("nodes", 1), cfg.nproc_per_node * cfg.nodes
        if was != now and os.environ.get("RANK", "0") == "0":
            print(
                f"resuming a run of {was} rank(s) with {now}: the same state, each rank taking its envs; not bit-exact "
                f"(an update's sums are added in another order)"
            )
        if saved.get("rank_stats", "step") != cfg.rank_stats and now > 1 and os.environ.get("RANK", "0") == "0":
            print(f"resuming with --rank-stats {cfg.rank_stats}: statistics combined per {cfg.rank_stats} from here on")
    return cfg, resume_from


def run(
    cfg: Config, resume_from: Path | None = None, *, resume_hint: str | None = None, standalone: bool = False
) -> int:
    """Train one prepared run here. Ctrl-C / SIGTERM stop it after the update in flight, checkpointed,
    with one line printed at once; a second Ctrl-C stops at once (the newest checkpoint stays valid).
    ``cfg.nproc_per_node`` > 1: as that many ranks of one run, started here (:mod:`ppo_pipeline.run.ranked`).
    ``standalone`` (the process is this command's alone, not a caller's Python): a run that never compiles
    leaves torch's compiler stack unimported (workaround 11)."""
    import torch

    from . import workarounds
    from .algo import compiling

    if standalone and compiling.never_at_budget(cfg, torch.device(cfg.device)):
        workarounds.defer_compiler_stack()
    from .run import ranked
    from .run.trainer import TrainingError, TrainingInterrupted, run_training

    hint = resume_hint or f"--resume {cfg.run_path()}"
    if cfg.nproc_per_node > 1 and not ranked.in_rank():
        print(f"{cfg.nproc_per_node} ranks (torch.distributed, one process each) of one run", flush=True)
        return ranked.spawn_local(cfg, resume_from, hint)
    lead = ranked.rank_of_process() == 0
    if lead:
        print(("resuming " if resume_from is not None else "") + budget_line(cfg), flush=True)

    def on_signal(signum: int) -> None:
        if not lead:
            return
        sys.stderr.write(
            ("\n" if cfg.progress else "")
            + f"{_SIGNAL_WORDS.get(signum, signal.Signals(signum).name)}: stopping after the update "
            f"in flight, with a checkpoint; continue with: {hint}\n"
        )
        sys.stderr.flush()

    try:
        summary = run_training(cfg, resume_from, on_signal=on_signal)
    except TrainingError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    except TrainingInterrupted:
        return 130  # the line was printed when the signal came
    except KeyboardInterrupt:  # during start-up, or a second Ctrl-C
        from .run import checkpoint

        saved = checkpoint.latest(cfg.run_path())
        sys.stderr.write(
            f"stopped at once; the newest checkpoint ({saved.name}) stays valid; continue with: {hint}\n"
            if saved
            else f"interrupted during start-up; nothing was trained yet; start again with: {hint}\n"
        )
        return 130
    if not lead:  # rank 0 speaks for the run
        return 0
    last100 = summary["last100_return_mean"]
    final = summary["final_eval_return_mean"]
    print(
        f"run {cfg.run_path()}: final eval return {'n/a' if final is None else f'{final:.1f}'}, "
        f"last-100 training return {'n/a (no episode finished)' if last100 is None else f'{last100:.1f}'}, "
        f"{summary['wall_time_s']:.0f} s"
    )
    return 0


_SIGNAL_WORDS: dict[int, str] = {signal.SIGINT: "interrupted (Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


def sweep_main(
    ns: argparse.Namespace,
    parser: argparse.ArgumentParser,
    argv: Sequence[str],
    *,
    recipe: str,
    atari_only: bool = False,
) -> int:
    """Plan, check and start a sweep (or print its plan with --dry-run); every bad input is one line and
    exit 2 before anything starts."""
    from .sweeps import slurm, sweep

    try:
        given = given_options(parser, argv)
        axes = grid_axes(ns)
        base = config_from_args(first_values(ns))
        if ns.name:
            raise ConfigError(
                "--name names one run; a sweep names its runs <env>__<objective>[__<field>=<value>]__s<seed>"
            )
        if ns.max_parallel is not None and ns.max_parallel < 1:
            raise ConfigError(f"--max-parallel={ns.max_parallel} must be >= 1")
        if ns.launcher == "local" and ns.cluster is not None:
            raise ConfigError("--cluster applies to --launcher slurm only")
        env_list = list(axes.pop("env_id", [base.env_id]))
        if ns.experiment is not None:
            exp = experiments.experiment(ns.experiment, recipe)
            if "env_id" in given:
                outside = [e for e in env_list if envs.resolve_id(e, base.env_module) not in exp.envs]
                if outside:
                    raise ConfigError(f"--env-id {outside[0]!r} is not one of {exp.name}'s envs: {', '.join(exp.envs)}")
            else:
                env_list = list(exp.envs)
            variants = [{**v, **g} for v in exp.variants for g in experiments.grid(axes)]
            seeds = parse_seeds(ns.seeds) if ns.seeds is not None else list(exp.seeds)
            if "total_steps" not in given:
                base = dataclasses.replace(base, total_steps=exp.total_steps)
            env_overrides = {
                e: {k: v for k, v in exp.env_overrides(envs.resolve_id(e, base.env_module)).items() if k not in given}
                for e in env_list
            }  # what the command line gives wins
        else:
            variants = experiments.grid(axes)
            seeds = parse_seeds(ns.seeds) if ns.seeds is not None else [ns.seed]
            env_overrides = {}
        experiments.check_size(len(env_list) * len(variants) * len(seeds))
        profile = slurm.load_cluster(ns.cluster or "local") if ns.launcher == "slurm" else None
        sweep_dir = Path(ns.sweep_dir or Path("sweeps") / _dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
        runs = sweep.plan(
            base, env_list, variants, seeds, sweep_dir, atari_only=atari_only, env_overrides=env_overrides
        )
        packs = plan_packs(runs, ns.pack if ns.pack is not None else 1, explicit=ns.experiment is None)
        if ns.dry_run:
            from .sweeps import cost

            print("\n".join(cost.estimate(runs, gpu=bool(profile and profile.gpus_per_node), packs=packs)))
            if ns.pack is not None:
                print("\n".join(describe(packs)))
            for r in runs[:5]:
                print(f"  {r['name']}")
            print(("  ...\n" if len(runs) > 5 else "") + "nothing started (--dry-run)")
            return 0
        if profile is not None:
            slurm.check_slurm(profile)
        manifest = sweep.create(
            sweep_dir,
            runs,
            launcher=ns.launcher,
            cluster=profile.name if profile else None,
            max_parallel=ns.max_parallel,
            argv=argv,
            packs=packs,
        )
    except UserError as e:
        fail(str(e))
        raise  # unreachable
    names = [r["name"] for r in runs]
    if ns.launcher == "slurm":
        assert profile is not None  # loaded above for the slurm launcher
        ids = sweep.submit_slurm(sweep_dir, manifest, names)
        what = f"{len(names)} run(s) in {len(ids)} job(s)" if len(ids) != len(names) else f"{len(ids)} run(s)"
        print(
            f"submitted {what} as job array {ids[0].split('_')[0]} "
            f"(at most {ns.max_parallel or profile.array_parallelism} at once) into {sweep_dir}"
        )
        print(f"follow with: python -m ppo_pipeline.sweep status {sweep_dir}")
        return 0
    n_units = len(sweep.units(manifest, names))
    print(
        f"sweep of {len(names)} run(s) in {sweep_dir}, run here one after the other"
        + (f" in {n_units} unit(s) (packs train their runs together)" if n_units != len(names) else "")
    )
    rc = sweep.run_local(sweep_dir, manifest, names)
    print(sweep.format_table(sweep.status(sweep_dir)))
    return rc


def _rank_main(argv: Sequence[str]) -> int:
    """``python -m ppo_pipeline.launch --rank CONFIG [CHECKPOINT]``: one rank of a run that
    :func:`ppo_pipeline.run.ranked.spawn_local` started (the prepared config as JSON)."""
    import json

    cfg = Config.from_dict(json.loads(Path(argv[1]).read_text()))
    hint = os.environ.get("PPO_PIPELINE_RESUME_HINT") or f"--resume {cfg.run_path()}"
    return run(cfg, Path(argv[2]) if len(argv) > 2 else None, resume_hint=hint, standalone=True)


def _rank_unit_main(argv: Sequence[str]) -> int:
    """``python -m ppo_pipeline.launch --rank-unit SPEC``: one rank of a local sweep's unit (a run or a pack over
    ``--nproc-per-node`` ranks, :func:`ppo_pipeline.sweeps.sweep.run_local`), resumed from its own checkpoint."""
    import json

    from . import workarounds
    from .sweeps.jobs import run_unit, unit_never_compiles

    spec = json.loads(Path(argv[1]).read_text())
    if unit_never_compiles(spec):  # this process is the rank's alone
        workarounds.defer_compiler_stack()
    from .run.checkpoint import CheckpointError
    from .run.trainer import TrainingError, TrainingInterrupted

    try:
        run_unit(spec, signals=(signal.SIGTERM, signal.SIGINT, signal.SIGUSR2))
    except TrainingInterrupted:
        return 130
    except (TrainingError, ConfigError, CheckpointError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    return 0


if __name__ == "__main__":
    try:
        process.start_up()  # a rank's process is the command's own (:mod:`.process`)
        if sys.argv[1:2] == ["--rank-unit"]:
            sys.exit(_rank_unit_main(sys.argv[1:]))
        if sys.argv[1:2] != ["--rank"]:
            fail("usage: python -m ppo_pipeline.launch --rank CONFIG [CHECKPOINT] (the ranks of --nproc-per-node)")
        sys.exit(_rank_main(sys.argv[1:]))
    finally:
        process.exiting()
