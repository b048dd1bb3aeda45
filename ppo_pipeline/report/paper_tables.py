"""The report's numbers in the paper's layouts, our values beside the published ones
(:mod:`ppo_pipeline.paper`): Table 1 (a row per objective and hyperparameter, the normalized score over
Table 1's MuJoCo tasks and seeds; other families in the same layout, each over its own tasks), Table 6 (a row per Atari game, the last-100 score beside A2C / ACER / PPO) and Table 2
(games "won"). Each function returns (header, rows) of strings, printed by ``python -m
ppo_pipeline.report`` and written into ``report.md``.
"""

from __future__ import annotations

import math

from .. import paper
from .aggregate import TABLE1_FAMILY, Report

Table = tuple[list[str], list[list[str]]]


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def table1(rep: Report) -> Table:
    """Table 1's layout over Table 1's MuJoCo tasks only: :func:`normalized` of that family, with the paper's
    value beside each row."""
    return normalized(rep, TABLE1_FAMILY)


def normalized(rep: Report, fam: str) -> Table:
    """A row per variant run on family ``fam``'s envs, in the paper's order (no clipping; clip eps; adaptive KL
    d_targ; fixed KL beta): its normalized score pooled over its runs on that family's envs only, IQM [95% CI],
    runs, tasks; for Table 1's family the paper's Table 1 value beside it."""
    envs = rep.family_envs(fam)
    paper_column = fam == TABLE1_FAMILY
    rows = []
    for v in rep.family_variants(fam):
        t = rep.families[fam][v]
        rows.append(
            [
                v,
                _num(t["mean"]),
                f"{_num(t['iqm'])} [{_num(t['ci'][0])}, {_num(t['ci'][1])}]",
                str(t["runs"]),
                f"{t['envs']}/{len(envs)}",
                *([_num(paper.TABLE1_BY_LABEL.get(v))] if paper_column else []),
            ]
        )
    return ["variant", "ours", "IQM [95% CI]", "runs", "tasks", *(["paper (Table 1)"] if paper_column else [])], rows


def title(rep: Report, fam: str) -> str:
    """The heading of family ``fam``'s normalized-score table."""
    envs = ", ".join(rep.family_envs(fam))
    if fam == TABLE1_FAMILY:
        return f"Table 1 (normalized score over Table 1's MuJoCo tasks: {envs}; the paper's value beside ours)"
    return f"Normalized score, {fam} ({envs}; random play 0, the best variant on each task 1)"


def atari_games(rep: Report) -> list[tuple[str, str]]:
    """(env id, Table 6 game) of the report's envs that are in Table 6."""
    return [(e, g) for e in rep.envs if (g := paper.game_of(e)) is not None]


def table6(rep: Report) -> Table:
    """A row per Atari game of Table 6 that was run: each variant's last-100 mean +- std over seeds (the
    paper's metric) beside A2C, ACER and PPO of Table 6."""
    variants = [
        v for v in rep.variants if any(g.variant == v for e, _ in atari_games(rep) for g in rep.groups if g.env_id == e)
    ]
    rows = []
    for env_id, game in atari_games(rep):
        cells = []
        for v in variants:
            g = next((g for g in rep.groups if g.env_id == env_id and g.variant == v), None)
            cells.append("-" if g is None else f"{_num(g.score_mean, 1)} +- {_num(g.score_std, 1)} (n={len(g.runs)})")
        rows.append([game, *cells, *(f"{x:.1f}" for x in paper.TABLE6[game])])
    return ["game", *(f"ours: {v}" for v in variants), *(f"paper {a}" for a in paper.TABLE6_ALGOS)], rows


def table2(rep: Report) -> Table:
    """Games "won" on the paper's two metrics, (1) the average episode return over all of training and
    (2) over the last 100 episodes (each averaged over seeds): among our variants when more than one ran;
    and our best variant's last-100 score against each of the paper's Table 6 columns."""
    games = atari_games(rep)
    rows = []
    variants = sorted({g.variant for e, _ in games for g in rep.groups if g.env_id == e})
    if len(variants) > 1:
        for metric, attr in (("(1) all of training", "train_mean"), ("(2) last 100 episodes", "score_mean")):
            wins = dict.fromkeys(variants, 0)
            ties = 0
            for env_id, _ in games:
                scores = {g.variant: getattr(g, attr) for g in rep.groups if g.env_id == env_id}
                top = max(scores.values())
                best = [v for v, s in scores.items() if s == top]
                if len(best) > 1:
                    ties += 1
                else:
                    wins[best[0]] += 1
            rows.append([f"{metric}, ours: " + ", ".join(f"{v} {n}" for v, n in wins.items()) + f", tie {ties}"])
    for i, algo in enumerate(paper.TABLE6_ALGOS):
        ahead = 0
        for env_id, game in games:
            ours = max(g.score_mean for g in rep.groups if g.env_id == env_id)
            ahead += ours >= paper.TABLE6[game][i]
        rows.append([f"(2) last 100 episodes: ours >= paper's {algo} on {ahead} of {len(games)} games"])
    rows.append(
        [
            "paper's Table 2 (A2C, ACER, PPO, tie): "
            + "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in paper.TABLE2.items())
        ]
    )
    return ["games won"], rows


def text(table: Table) -> str:
    """A plain-text table (columns padded) for the terminal."""
    header, rows = table
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows])


def markdown(table: Table) -> list[str]:
    header, rows = table
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(r) + " |" for r in rows),
    ]
