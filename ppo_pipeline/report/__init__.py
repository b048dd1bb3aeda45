"""Report over run directories: the paper's scores across seeds, Table 1's normalized score, curves.

    python -m ppo_pipeline.report DIR [DIR ...] [--out OUT]

Every directory below a DIR that holds a ``config.json`` is a run (a sweep directory is searched
recursively; its manifest is not needed). A directory holding ``metrics.csv`` or ``episodes.csv``
without a readable ``config.json`` is a broken run. Runs without a finished ``summary.json`` are read
as they stand and marked *in progress* (or *stopped* when a sweep's ``job.json`` says the job failed
or was interrupted); broken runs are skipped and named in ``report.md`` and on stderr.

Groups and scores (paper: Schulman et al. 2017, Sec. 6.1 / Table 1 and Sec. 6.2 / Table 2):

* variant = objective plus the hyperparameter that distinguishes it in Table 1, read from
  ``config.json``: ``clip eps=<clip_epsilon>``, ``kl_adaptive d_targ=<kl_target>``,
  ``kl_fixed beta=<kl_beta>``, ``none``.
* score of a run s = mean return of its last 100 finished training episodes (raw score,
  ``episodes.csv``; all of them when it has fewer than 100).
* across the n seeds of an (env, variant): mean, sample std (ddof = 1), and
  IQM = mean of the sorted scores after dropping floor(n/4) from each end (interquartile mean,
  Agarwal et al. 2021, ``scipy.stats.trim_mean(x, 0.25)``), with a percentile-bootstrap 95% CI:
  resample the n scores with replacement B times (``--bootstrap B``, a fixed-seed RNG), take the
  2.5 and 97.5 percentiles of the B IQMs.
* Table 2 pair: average episode return over all of training (mean of every row of
  ``episodes.csv``) and over the last 100 episodes, each averaged over seeds.
* Table 1 normalized score, per env e:
      norm(run) = (s(run) - r_e) / (b_e - r_e)
  with r_e the random-policy score of e (mean over e's seeds of the mean return of
  ``--random-episodes`` episodes of uniform random actions, same env stack and env seeds as
  training: ``config.env_seeds(seed, num_envs)``) and b_e = max over the compared variants v of
  mean_{runs of v on e} s(run). A variant's normalized score is the mean of norm(run) over its runs:
  on each env the best variant scores exactly 1 and random play 0. The last column of Table 1
  averages over all runs of the variant on Table 1's MuJoCo tasks (the paper's "averaged over 21 runs");
  runs on other envs are pooled within their own family only (Atari, classic control, other MuJoCo tasks,
  DMControl, other: :func:`ppo_pipeline.report.aggregate.family`), each family printed in the same layout.

Outputs in OUT (default: beside what it reads, :func:`default_out`: ``DIR/report`` for one DIR -- a run, a
sweep, a folder of runs -- or ``report`` in the folder holding all the DIRs), named on the last line printed:
``report.md`` (tables), ``report.csv`` (one row per env and variant), ``runs.csv``
(one row per run), ``curves.png`` (one panel per env) and ``curves-<env>.png``, and
``random_scores.json`` (the cache of measured random-policy scores).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from ..cli import OneLineParser
from . import paper_tables
from .aggregate import Report, aggregate
from .plots import plot_curves
from .random_policy import CACHE, random_scores
from .runs import LAST_N, ReportError, Skipped, load_runs
from .tables import write_csvs, write_markdown

__all__ = ["Report", "ReportError", "build_parser", "build_report", "default_out", "main"]


def default_out(dirs: Sequence[str | Path]) -> Path:
    """Where the report goes when no ``--out`` is given: ``DIR/report`` for one DIR, else ``report`` in the
    deepest folder holding every DIR (never the current directory unless it holds what is read)."""
    paths = [Path(d) for d in dirs]
    if len(paths) == 1:
        return paths[0] / "report"
    try:
        common = Path(os.path.commonpath([p.resolve() for p in paths]))
    except ValueError:  # no common folder (another drive)
        common = paths[0].resolve().parent
    with contextlib.suppress(ValueError):  # a relative path prints as the user typed it
        common = common.relative_to(Path.cwd())
    return common / "report"


def build_report(
    dirs: Sequence[str | Path],
    out: str | Path,
    *,
    random_episodes: int = LAST_N,
    random_scores_given: dict[str, float] | None = None,
    bootstrap: int = 2000,
    bootstrap_seed: int = 0,
    bins: int = 50,
    band: str = "minmax",
    finished_only: bool = False,
    plots: bool = True,
    log: TextIO | None = None,
) -> Report:
    """Read the runs below ``dirs``, write the report into ``out``, return the numbers.

    ``random_scores_given`` maps env id -> random-policy score and skips measuring those envs (tests,
    or a known reference). Raises :class:`ReportError` on bad input.
    """
    log = log or sys.stderr
    runs, skipped = load_runs(dirs)
    if finished_only:
        skipped += [Skipped(r.path, "in progress (--finished-only)") for r in runs if not r.finished]
        runs = [r for r in runs if r.finished]
    for s in skipped:
        log.write(f"skipped {s.path}: {s.reason}\n")
    if not runs:
        raise ReportError(f"no readable run in {', '.join(map(str, dirs))} ({len(skipped)} skipped)")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ReportError(f"--out {str(out)!r} cannot be created ({e.strerror})") from None
    random = random_scores(runs, random_episodes, out / CACHE, random_scores_given, log)
    groups, families, notes = aggregate(runs, random, bootstrap, bootstrap_seed)
    rep = Report([str(d) for d in dirs], runs, skipped, groups, random, families, notes, bootstrap)
    curve_files = plot_curves(groups, random, out, bins, band) if plots else []
    write_markdown(rep, out / "report.md", curve_files)
    rep.files = [out / "report.md", *write_csvs(rep, out), *curve_files]
    return rep


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------
def _env_value(text: str) -> tuple[str, float]:
    env, sep, value = text.rpartition("=")
    try:
        if not sep or not env:
            raise ValueError
        return env, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ENV=SCORE such as CartPole-v1=22.3, got {text!r}") from None


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        v = -1
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def _positive(text: str) -> int:
    v = _nonneg(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m ppo_pipeline.report",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Formulas: see the module docstring (pydoc ppo_pipeline.report) and report.md.",
    )
    p.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="run directories or folders/sweeps holding them (searched recursively for config.json)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="output folder for report.md, CSVs, PNGs (default: DIR/report for one "
        "DIR, else report/ in the folder holding the DIRs)",
    )
    p.add_argument(
        "--random-episodes",
        type=_nonneg,
        default=LAST_N,
        metavar="N",
        help="random-policy episodes per seed for the normalized score; 0 = do not measure (default: %(default)s)",
    )
    p.add_argument(
        "--random-score",
        type=_env_value,
        action="append",
        default=[],
        metavar="ENV=SCORE",
        help="use this random-policy score for ENV instead of measuring it; repeatable (default: none)",
    )
    p.add_argument(
        "--bootstrap",
        type=_nonneg,
        default=2000,
        metavar="N",
        help="bootstrap resamples for the IQM confidence intervals (default: %(default)s)",
    )
    p.add_argument(
        "--bootstrap-seed",
        type=_nonneg,
        default=0,
        metavar="SEED",
        help="seed of the bootstrap RNG (default: %(default)s)",
    )
    p.add_argument(
        "--bins",
        type=_positive,
        default=50,
        metavar="N",
        help="env-step bins of the learning curves (default: %(default)s)",
    )
    p.add_argument(
        "--band",
        choices=("minmax", "std"),
        default="minmax",
        help="seed band of the curves: min-max over seeds or mean +- std (default: %(default)s)",
    )
    p.add_argument(
        "--finished-only",
        action="store_true",
        default=False,
        help="leave out runs still in progress (default: %(default)s)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    out = Path(ns.out) if ns.out is not None else default_out(ns.dirs)
    try:
        rep = build_report(
            ns.dirs,
            out,
            random_episodes=ns.random_episodes,
            random_scores_given=dict(ns.random_score),
            bootstrap=ns.bootstrap,
            bootstrap_seed=ns.bootstrap_seed,
            bins=ns.bins,
            band=ns.band,
            finished_only=ns.finished_only,
        )
    except ReportError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    games = paper_tables.atari_games(rep)
    shown = [f for f in rep.families if not (f == "Atari" and len(games) == len(rep.family_envs(f)))]
    print(
        "\n\n".join(
            paper_tables.title(rep, f) + "\n" + paper_tables.text(paper_tables.normalized(rep, f)) for f in shown
        )
    )  # Atari's games of Table 6 are shown in its layout below
    if games:
        print(
            "\nTable 6 (last-100 score; the paper's A2C / ACER / PPO beside ours)\n"
            + paper_tables.text(paper_tables.table6(rep))
        )
        print("\nTable 2 (games won)\n" + "\n".join(r[0] for r in paper_tables.table2(rep)[1]))
    print(
        f"\nreport of {len(rep.runs)} runs ({len(rep.skipped)} skipped): "
        + ", ".join(p.name for p in rep.files)
        + f"\nwritten to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
