"""Writing the report: ``report.md`` (the tables) and ``report.csv`` / ``runs.csv``."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import paper_tables
from .aggregate import TABLE1_FAMILY, Report
from .runs import LAST_N


def num(x: float, digits: int = 2) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def write_markdown(rep: Report, path: Path, curve_files: Sequence[Path]) -> None:
    n_prog = sum(not r.finished for r in rep.runs)
    pct = "95%"
    L: list[str] = ["# PPO report", ""]
    L.append(
        f"Inputs: {', '.join(f'`{d}`' for d in rep.dirs)}. {len(rep.runs)} runs read "
        f"({n_prog} in progress), {len(rep.skipped)} skipped. Scores are raw episode returns of the "
        f"training episodes (episodes.csv); a run's score is the mean of its last {LAST_N} episodes."
    )
    L += [
        "",
        "## Final score across seeds",
        "",
        f"Score of a run = mean return of its last {LAST_N} training episodes (the paper's metric). "
        f"Mean +- sample std (ddof=1) over runs; IQM = mean after dropping floor(n/4) runs at each end, "
        f"{pct} CI by percentile bootstrap over runs ({rep.bootstrap} resamples, fixed seed).",
        "",
    ]
    rows = []
    for g in rep.groups:
        steps = sorted({r.reached_step for r in g.runs})
        stopped = sum(bool(r.job_state) for r in g.runs if not r.finished)
        status = (
            "finished"
            if not g.in_progress
            else f"{g.in_progress} of {len(g.runs)} " + ("in progress" if not stopped else "not finished")
        )
        rows.append(
            [
                g.env_id,
                g.variant + (" **(best)**" if g.best else ""),
                str(len(g.runs)),
                str(steps[0]) if len(steps) == 1 else f"{steps[0]}-{steps[-1]}",
                f"{num(g.score_mean)} +- {num(g.score_std)}",
                f"{num(g.score_iqm)} [{num(g.iqm_ci[0])}, {num(g.iqm_ci[1])}]",
                status,
            ]
        )
    L += _table(["env", "variant", "runs", "env steps", "last-100 mean +- std", f"IQM [{pct} CI]", "status"], rows)

    for fam in rep.families:
        if fam == TABLE1_FAMILY:
            L += [
                "",
                "## Table 1 in the paper's layout",
                "",
                "Normalized score of each variant, averaged over all its runs on Table 1's MuJoCo tasks (random "
                "play 0, the best compared variant on each task 1; details below), beside the paper's Table 1 (7 "
                "tasks x 3 seeds, 1M steps). A variant run on fewer tasks or at another budget is not the paper's "
                "number: see tasks and env steps. Runs on other envs are scored in their own family's table.",
                "",
            ]
        else:
            L += [
                "",
                f"## Normalized score, {fam}",
                "",
                f"The same score pooled over the {fam} tasks only ({', '.join(rep.family_envs(fam))}); the "
                f"paper has no such table.",
                "",
            ]
        L += paper_tables.markdown(paper_tables.normalized(rep, fam))
    if paper_tables.atari_games(rep):
        L += [
            "",
            "## Table 6 layout: Atari, last-100 score",
            "",
            "Mean +- std over seeds of each run's last-100 training episodes (raw game score), beside Table 6 "
            "(40M frames = 10M steps; see env steps above for ours).",
            "",
        ]
        L += paper_tables.markdown(paper_tables.table6(rep))
        L += ["", "## Table 2: games won", ""]
        L += [f"- {r[0]}" for r in paper_tables.table2(rep)[1]]

    L += [
        "",
        "## Normalized score per task, by family",
        "",
        "Per env e: norm(run) = (s(run) - r_e) / (b_e - r_e), s = mean of the run's last 100 episodes, "
        "r_e = random-policy score (uniform random actions, same env stack and env seeds), "
        "b_e = the best compared variant's mean score on e. A variant's entry is the mean of norm(run) "
        "over its runs (the best variant is 1, random play 0); the last columns pool all its runs on the "
        "family's envs (never across families).",
        "",
    ]
    unfinished = {g.variant for g in rep.groups if g.in_progress}
    for fam in rep.families:
        envs = rep.family_envs(fam)
        rows = []
        for v in rep.family_variants(fam):
            t = rep.families[fam][v]
            cells = [num(t["per_env"].get(e, math.nan), 3) if e in t["per_env"] else "-" for e in envs]
            partial = f" ({t['envs']} of {len(envs)} envs)" if t["envs"] < len(envs) else ""
            ci = f"{num(t['iqm'], 3)} [{num(t['ci'][0], 3)}, {num(t['ci'][1], 3)}]"
            rows.append(
                [v + (" *" if v in unfinished else ""), *cells, num(t["mean"], 3) + partial, ci, str(t["runs"])]
            )
        L += ["", f"### {fam}", ""]
        L += _table(["variant", *envs, "mean over runs", f"IQM [{pct} CI]", "runs"], rows)
    if unfinished:
        L += ["", "\\* includes runs not finished yet (scored on the episodes they have so far)."]
    envs = rep.envs
    L += ["", "Random-policy score r_e and best variant b_e:", ""]
    rows = []
    for e in envs:
        rs = rep.random.get(e)
        best = next(g for g in rep.groups if g.env_id == e and g.best)
        seeds = ", ".join(f"{s}: {v:.4g}" for s, v in sorted(rs.per_seed.items())) if rs and rs.per_seed else ""
        src = rs.source if rs else "unavailable"
        if rs and rs.episodes:
            src += f", {rs.episodes} episodes per seed"
        rows.append([e, num(rs.value if rs else math.nan), src, seeds or "-", best.variant, num(best.score_mean)])
    L += _table(["env", "random score r_e", "source", "per seed", "best variant", "b_e"], rows)

    L += [
        "",
        "## Table 2 pair: average episode return",
        "",
        "Mean over seeds of (1) the average return of all training episodes and (2) the average of the "
        "last 100 (the paper's Atari Table 2 columns).",
        "",
    ]
    rows = [
        [
            g.env_id,
            g.variant,
            f"{num(g.train_mean)} +- {num(g.train_std)}",
            f"{num(g.score_mean)} +- {num(g.score_std)}",
            str(len(g.runs)),
        ]
        for g in rep.groups
    ]
    L += _table(["env", "variant", "all training", "last 100", "runs"], rows)

    L += ["", "## Runs", ""]
    rows = [
        [
            f"`{r.path}`",
            r.env_id,
            r.variant,
            str(r.seed),
            r.status,
            str(r.reached_step),
            str(len(r.returns)),
            num(r.score),
            num(r.train_mean),
            num(r.normalized, 3),
            num(r.last_eval),
        ]
        for g in rep.groups
        for r in g.runs
    ]
    L += _table(
        [
            "run",
            "env",
            "variant",
            "seed",
            "status",
            "env steps",
            "episodes",
            "last 100",
            "all training",
            "normalized",
            "last eval",
        ],
        rows,
    )

    if curve_files:
        L += [
            "",
            "## Learning curves",
            "",
            "Training episode return binned on a common env-step grid per env; line = mean over seeds, "
            "band over seeds. Runs in progress draw as far as they got.",
            "",
        ]
        L += [f"![{p.stem}]({p.name})" for p in curve_files[:1]]
        L += [""] + [f"- [{p.name}]({p.name})" for p in curve_files[1:]]

    L += ["", "## Skipped runs", ""]
    L += [f"- `{s.path}`: {s.reason}" for s in rep.skipped] or ["none"]
    notes = rep.notes + [f"`{r.path}`: {n}" for r in rep.runs for n in r.notes]
    L += ["", "## Notes", ""]
    L += [f"- {n}" for n in notes] or ["none"]
    path.write_text("\n".join(L) + "\n")


def _cell(x: Any) -> Any:
    """A CSV cell: NaN becomes an empty cell, as in metrics.csv."""
    return "" if isinstance(x, float) and not math.isfinite(x) else x


def write_csvs(rep: Report, out: Path) -> list[Path]:
    """``report.csv`` (one row per env and variant) and ``runs.csv`` (one row per run); NaN is empty."""
    cols = [
        "env_id",
        "variant",
        "objective",
        "runs",
        "in_progress",
        "seeds",
        "env_steps_min",
        "env_steps_max",
        "last100_mean",
        "last100_std",
        "last100_iqm",
        "last100_iqm_ci_low",
        "last100_iqm_ci_high",
        "train_all_mean",
        "train_all_std",
        "random_score",
        "best_variant",
        "best_score",
        "normalized_mean",
    ]
    with (out / "report.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for g in rep.groups:
            best = next(b for b in rep.groups if b.env_id == g.env_id and b.best)
            rs = rep.random.get(g.env_id)
            w.writerow(
                [
                    _cell(x)
                    for x in [
                        g.env_id,
                        g.variant,
                        g.objective,
                        len(g.runs),
                        g.in_progress,
                        " ".join(str(r.seed) for r in g.runs),
                        min(r.reached_step for r in g.runs),
                        max(r.reached_step for r in g.runs),
                        g.score_mean,
                        g.score_std,
                        g.score_iqm,
                        g.iqm_ci[0],
                        g.iqm_ci[1],
                        g.train_mean,
                        g.train_std,
                        rs.value if rs else math.nan,
                        best.variant,
                        best.score_mean,
                        g.normalized,
                    ]
                ]
            )
    with (out / "runs.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "path",
                "env_id",
                "variant",
                "seed",
                "status",
                "env_steps",
                "total_steps",
                "episodes",
                "last100_mean",
                "train_all_mean",
                "normalized",
                "last_eval_return_mean",
            ]
        )
        for g in rep.groups:
            for r in g.runs:
                w.writerow(
                    [
                        _cell(x)
                        for x in [
                            str(r.path),
                            r.env_id,
                            r.variant,
                            r.seed,
                            r.state,
                            r.reached_step,
                            r.total_steps,
                            len(r.returns),
                            r.score,
                            r.train_mean,
                            r.normalized,
                            r.last_eval,
                        ]
                    ]
                )
    return [out / "report.csv", out / "runs.csv"]
