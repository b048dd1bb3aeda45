"""The report tool on synthetic run directories with known numbers, broken runs, bad input, and one
small real random-policy measurement on CartPole."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ppo_pipeline import report
from ppo_pipeline.algo import evaluation
from ppo_pipeline.config import Config
from ppo_pipeline.run.metrics import EPISODE_COLUMNS, METRIC_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


def make_run(parent: Path, name: str, *, score: float, env: str = "CartPole-v1", objective: str = "clip",
             seed: int = 0, head: float = 0.0, finished: bool = True, **cfg: object) -> Path:
    """A run directory whose last 100 episodes return ``score`` after 50 episodes returning ``head``:
    last-100 mean = score, all-training mean = (50 * head + 100 * score) / 150."""
    d = parent / name
    d.mkdir(parents=True)
    c = Config(env_id=env, objective=objective, seed=seed, total_steps=1500, run_dir=str(parent), name=name, **cfg)
    (d / "config.json").write_text(json.dumps(c.to_dict(), indent=2))
    returns = [head] * 50 + [score] * 100
    with (d / "episodes.csv").open("w") as f:
        f.write(",".join(EPISODE_COLUMNS) + "\n")
        f.writelines(f"{10 * (i + 1)},{r!r},10\n" for i, r in enumerate(returns))
    with (d / "metrics.csv").open("w") as f:
        f.write(",".join(METRIC_COLUMNS) + "\n")
        for u in range(1, 4):
            row = {"update": u, "step": 500 * u, "eval_return_mean": 7.5 if u == 3 else ""}
            f.write(",".join(str(row.get(k, "")) for k in METRIC_COLUMNS) + "\n")
    if finished:
        (d / "summary.json").write_text(json.dumps({"status": "finished", "env_id": env, "objective": objective,
                                                    "seed": seed, "last100_return_mean": score}))
    return d


CLIP = [10.0, 20.0, 30.0, 100.0]   # CartPole clip eps=0.2, seeds 0-3: mean 40, IQM (20+30)/2 = 25
KL = [5.0, 5.0, 5.0, 5.0]          # CartPole kl_fixed beta=1
R_CART, R_ACRO = -10.0, -500.0     # injected random-policy scores


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    for s, v in enumerate(CLIP):
        make_run(root / "cart" / "clip", f"s{s}", score=v, seed=s)
    for s, v in enumerate(KL):
        make_run(root / "cart" / "kl", f"s{s}", score=v, seed=s, objective="kl_fixed", kl_beta=1.0)
    make_run(root / "acro", "clip-s0", score=-100.0, env="Acrobot-v1", seed=0, head=-500.0)
    make_run(root / "acro", "clip-s1", score=-80.0, env="Acrobot-v1", seed=1, head=-500.0)
    make_run(root / "acro", "none-s0", score=-300.0, env="Acrobot-v1", seed=0, objective="none")
    (root / "manifest.json").write_text("{}")
    return root


@pytest.fixture(scope="module")
def built(sweep: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[report.Report, Path, str]:
    out = tmp_path_factory.mktemp("out")
    log = io.StringIO()
    rep = report.build_report([sweep], out, random_scores_given={"CartPole-v1": R_CART, "Acrobot-v1": R_ACRO},
                              bootstrap=500, log=log)
    return rep, out, log.getvalue()


def test_known_numbers(built: tuple[report.Report, Path, str]) -> None:
    rep, out, _ = built
    assert len(rep.runs) == 11 and not rep.skipped
    clip = rep.group("CartPole-v1", "clip eps=0.2")
    assert [r.score for r in clip.runs] == CLIP                          # last-100 mean per run
    assert clip.score_mean == pytest.approx(40.0)
    assert clip.score_std == pytest.approx(float(np.std(CLIP, ddof=1)))
    assert clip.score_iqm == pytest.approx(25.0)
    assert clip.iqm_ci[0] <= 25.0 <= clip.iqm_ci[1] and 10.0 <= clip.iqm_ci[0] and clip.iqm_ci[1] <= 100.0
    assert clip.train_mean == pytest.approx(40.0 * 100 / 150)           # Table 2: all of training
    kl = rep.group("CartPole-v1", "kl_fixed beta=1")
    assert kl.iqm_ci == (5.0, 5.0)
    # Table 1: (s - r) / (b - r) with b = 40 (clip's mean), r = -10.
    assert clip.best and not kl.best
    assert clip.normalized == pytest.approx(1.0, abs=1e-12)
    assert kl.normalized == pytest.approx((5.0 - R_CART) / (40.0 - R_CART), abs=1e-12)   # 0.3
    assert [r.normalized for r in clip.runs] == pytest.approx([(v + 10) / 50 for v in CLIP])
    acro_clip, acro_none = rep.group("Acrobot-v1", "clip eps=0.2"), rep.group("Acrobot-v1", "none")
    assert acro_clip.score_mean == pytest.approx(-90.0)
    assert acro_clip.train_mean == pytest.approx(_mean([(50 * -500 + 100 * v) / 150 for v in (-100, -80)]))
    assert acro_clip.normalized == pytest.approx(1.0, abs=1e-12)
    assert acro_none.normalized == pytest.approx(200.0 / 410.0, abs=1e-12)
    # Averaged over runs on the family's envs (classic control): clip 6 runs all averaging 1; kl_fixed only on
    # CartPole. No Table 1 task ran: no Table 1 rows.
    assert rep.variants == ["none", "clip eps=0.2", "kl_fixed beta=1"]
    assert list(rep.families) == ["classic control"] and rep.table1 == {}
    classic = rep.families["classic control"]
    assert classic["clip eps=0.2"]["mean"] == pytest.approx(1.0, abs=1e-12)
    assert classic["clip eps=0.2"]["runs"] == 6
    assert classic["kl_fixed beta=1"]["mean"] == pytest.approx(0.3, abs=1e-12)
    assert classic["none"]["mean"] == pytest.approx(200.0 / 410.0, abs=1e-12)


def _mean(x: list[float]) -> float:
    return sum(x) / len(x)


def test_outputs_files(built: tuple[report.Report, Path, str]) -> None:
    rep, out, _ = built
    md = (out / "report.md").read_text()
    for text in ("| CartPole-v1 | clip eps=0.2 **(best)** | 4 | 1500 | 40.00 +- ", "| 25.00 [",
                 "| kl_fixed beta=1 | - | 0.300 | 0.300 (1 of 2 envs) |", "(s(run) - r_e) / (b_e - r_e)", "given",
                 "![curves](curves.png)"):
        assert text in md, text
    with (out / "report.csv").open() as f:
        rows = {(r["env_id"], r["variant"]): r for r in csv.DictReader(f)}
    row = rows[("CartPole-v1", "kl_fixed beta=1")]
    assert float(row["normalized_mean"]) == pytest.approx(0.3)
    assert float(row["last100_mean"]) == 5.0 and float(row["random_score"]) == R_CART
    assert float(rows[("CartPole-v1", "clip eps=0.2")]["last100_iqm"]) == 25.0
    with (out / "runs.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 11
    for name in ("curves.png", "curves-CartPole-v1.png", "curves-Acrobot-v1.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_iqm_and_bootstrap() -> None:
    assert report.stats.iqm([100, 1, 7, 2, 6, 3, 5, 4]) == 4.5          # drop 2 each end: mean(3, 4, 5, 6)
    assert report.stats.iqm([1, 2, 30]) == 11.0                         # n < 4: the mean
    assert report.stats.iqm([1, 2, 3, 4, 5]) == 3.0                     # drop 1 each end
    x = [1.0, 2.0, 3.0, 10.0, 11.0, 12.0]
    a, b = report.stats.bootstrap_ci(x, 1000, seed=3), report.stats.bootstrap_ci(x, 1000, seed=3)
    assert a == b and a[0] < report.stats.iqm(x) < a[1]
    assert report.stats.bootstrap_ci([4.0, 4.0, 4.0], 100) == (4.0, 4.0)
    lo, hi = report.stats.bootstrap_ci([[0.0, 1.0], [10.0, 11.0, 12.0]], 200, seed=0)   # stratified
    assert 0.0 <= lo <= hi <= 12.0


def test_variant_labels() -> None:
    cfg = Config().to_dict()
    label = lambda **kw: report.runs.variant_of({**cfg, **kw})[1]  # noqa: E731
    assert label(objective="clip", clip_epsilon=0.2) == "clip eps=0.2"
    assert label(objective="kl_adaptive", kl_target=0.01) == "kl_adaptive d_targ=0.01"
    assert label(objective="kl_fixed", kl_beta=1.0) == "kl_fixed beta=1"
    assert label(objective="none") == "none"


def test_binned_curve() -> None:
    edges = np.array([0.0, 10, 20, 30, 40, 50])
    got = report.plots.binned_curve(np.array([5.0, 15, 15, 35]), np.array([1.0, 2, 4, 8]), edges, reached=40)
    np.testing.assert_array_equal(got[:4], [1.0, 3.0, 3.0, 8.0])   # empty bin 20-30 carries 3.0
    assert math.isnan(got[4])                                       # past the run's last step


def test_in_progress_and_broken_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    make_run(runs, "good", score=50.0, seed=0)
    live = make_run(runs, "live", score=30.0, seed=1, finished=False)
    with (live / "episodes.csv").open("a") as f:
        f.write("1510,12")                                  # a line being written: dropped
    bad_json = make_run(runs, "bad-json", score=1.0, seed=2)
    (bad_json / "config.json").write_text("{not json")
    no_cfg = make_run(runs, "no-config", score=1.0, seed=3)
    (no_cfg / "config.json").unlink()
    empty = make_run(runs, "empty-csv", score=1.0, seed=4)
    (empty / "episodes.csv").write_text("")
    corrupt = make_run(runs, "corrupt-csv", score=1.0, seed=5)
    with (corrupt / "metrics.csv").open("a") as f:
        f.write("4,2000,abc\n")
    no_eps = make_run(runs, "no-episodes", score=1.0, seed=6, finished=False)
    (no_eps / "episodes.csv").write_text(",".join(EPISODE_COLUMNS) + "\n")
    (runs / "config.json").write_text(json.dumps({"grid": {"seed": [0, 1]}}))   # not a run's config: ignored
    queued = runs / "queued"
    queued.mkdir()
    (queued / "config.json").write_text(json.dumps(Config(seed=7).to_dict()))
    failed = make_run(runs, "failed", score=20.0, seed=8, finished=False)
    (failed / "job.json").write_text(json.dumps({"state": "FAILED", "error": "boom"}))
    out, log = tmp_path / "out", io.StringIO()
    rep = report.build_report([runs], out, random_scores_given={"CartPole-v1": 0.0}, bootstrap=50,
                              plots=False, log=log)
    assert sorted(r.path.name for r in rep.runs) == ["failed", "good", "live"]
    live_run = next(r for r in rep.runs if r.path.name == "live")
    assert not live_run.finished and live_run.score == 30.0 and len(live_run.returns) == 150
    md = (out / "report.md").read_text()
    assert "in progress (1500/1500 steps)" in md and "stopped, job FAILED (1500/1500 steps)" in md
    assert "2 of 3 not finished" in md and "| clip eps=0.2 * |" in md
    reasons = {"bad-json": "config.json is not valid JSON", "no-config": "has no config.json (not a run directory)",
               "empty-csv": "episodes.csv is empty", "corrupt-csv": "metrics.csv is corrupt",
               "no-episodes": "no finished training episode", "queued": "not started"}
    skipped = md.split("## Skipped runs")[1]
    for name, why in reasons.items():
        assert f"`{runs / name}`: {why}" in skipped, name
        assert f"skipped {runs / name}: {why}" in log.getvalue(), name
    assert len(rep.skipped) == len(reasons)
    # one variant: b = (50 + 30 + 20) / 3, r = 0 -> norm(run) = 3 s / 100, the variant 1
    assert sorted(r.normalized for r in rep.runs) == pytest.approx([0.6, 0.9, 1.5])
    assert rep.group("CartPole-v1", "clip eps=0.2").normalized == pytest.approx(1.0)
    rep2 = report.build_report([runs], tmp_path / "out2", random_scores_given={"CartPole-v1": 0.0},
                               bootstrap=0, plots=False, finished_only=True, log=io.StringIO())
    assert [r.path.name for r in rep2.runs] == ["good"]


def test_bad_input_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "contains no run" in err
    broken = make_run(tmp_path / "only-broken", "r", score=1.0)
    (broken / "config.json").write_text("[")
    assert report.main([str(tmp_path / "only-broken"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: no readable run") and str(broken) in err
    with pytest.raises(SystemExit) as e:
        report.main([str(tmp_path / "empty"), "--random-score", "CartPole"])
    assert e.value.code == 2 and capsys.readouterr().err.startswith("error: ")


def test_help_lists_every_option_with_default() -> None:
    parser = report.build_parser()
    text = parser.format_help()
    for action in parser._actions:
        for opt in action.option_strings:
            assert opt in text
            if opt not in ("-h", "--help"):
                assert "default" in (action.help or ""), opt


def test_cli_end_to_end(sweep: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    p = subprocess.run([sys.executable, "-m", "ppo_pipeline.report", str(sweep / "cart"), str(sweep / "acro"),
                        "--out", str(out), "--random-score", "CartPole-v1=-10", "--random-score", "Acrobot-v1=-500",
                        "--bootstrap", "100", "--bins", "10", "--band", "std"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "report of 11 runs (0 skipped)" in p.stdout
    assert {"report.md", "report.csv", "runs.csv", "curves.png"} <= {x.name for x in out.iterdir()}


def test_random_score_measured_on_cartpole(tmp_path: Path) -> None:
    cfg = Config(env_id="CartPole-v1", num_envs=2)
    a = evaluation.random_score(cfg, seed=3, episodes=10)
    assert a == evaluation.random_score(cfg, seed=3, episodes=10)   # same seeds, same episodes
    assert 8.0 < a < 60.0                                               # random CartPole lasts ~22 steps
    runs = tmp_path / "runs"
    make_run(runs, "a", score=100.0, seed=3, num_envs=2)
    rs, _ = report.runs.load_runs([runs])
    cache = tmp_path / "random_scores.json"
    first = report.random_policy.random_scores(rs, 10, cache, log=io.StringIO())["CartPole-v1"]
    assert first.source == "measured" and first.value == a and first.per_seed == {3: a}
    second = report.random_policy.random_scores(rs, 10, cache, log=io.StringIO())["CartPole-v1"]
    assert second.source == "cached" and second.value == a
    assert json.loads(cache.read_text())["entries"][0]["score"] == a


def test_paper_layouts(tmp_path: Path, capsys) -> None:
    """Table 1 rows in the paper's order with the paper's value beside ours (variants told apart by their
    hyperparameter), over Table 1's tasks only (other envs in their own family's table); Table 6 rows
    beside A2C / ACER / PPO; Table 2 counts. Printed, and in report.md."""
    root = tmp_path / "runs"
    make_run(root / "mujoco", "h-clip1", score=100.0, env="Hopper-v5", clip_epsilon=0.1)
    make_run(root / "mujoco", "h-clip3", score=60.0, env="Hopper-v5", clip_epsilon=0.3)
    make_run(root / "mujoco", "h-none", score=20.0, env="Hopper-v5", objective="none")
    make_run(root / "mujoco", "h-kl3", score=55.0, env="Hopper-v5", objective="kl_fixed", kl_beta=3.0)
    make_run(root / "atari", "pong-clip", score=-20.0, head=-21.0, env="ALE/Pong-v5", clip_epsilon=0.1)
    make_run(root / "atari", "pong-kl", score=-19.0, head=-21.0, env="ALE/Pong-v5", objective="kl_fixed", kl_beta=3.0)
    given = ["--random-score", "Hopper-v5=10", "--random-score", "ALE/Pong-v5=-21", "--bootstrap", "50"]
    # Atari runs beside the MuJoCo ones: Table 1's rows over Hopper only, beside the paper's; Pong in Table 6
    assert report.main([str(root), "--out", str(tmp_path / "mixed"), *given]) == 0
    printed = capsys.readouterr().out
    assert "Table 1 (normalized score over Table 1's MuJoCo tasks: Hopper-v5;" in printed and "0.76" in printed
    assert ["clip", "eps=0.1", "1.00"] in [ln.split()[:3] for ln in printed.splitlines()]
    assert "Normalized score, Atari" not in printed
    out = tmp_path / "out"
    assert report.main([str(root / "mujoco"), "--out", str(out), *given]) == 0
    printed = capsys.readouterr().out
    # Hopper: random 10, best 100 -> clip 0.1: 1.0, clip 0.3: 0.56, none: 0.11 (one task each)
    table1 = {line.split("  ")[0]: line.split() for line in printed.splitlines() if line.startswith(("none", "clip", "kl"))}
    assert table1["none"][1] == "0.11" and table1["clip eps=0.3"][3] == "0.56"
    assert "clip eps=0.1" in printed and "0.76" in printed and "clip eps=0.3" in printed and "0.70" in printed
    assert "kl_fixed beta=3" in printed and "0.72" in printed and "-0.39" in printed
    order = [printed.index(v) for v in ("none ", "clip eps=0.1", "clip eps=0.3", "kl_fixed beta=3")]
    assert order == sorted(order)                                   # the paper's row order
    assert "## Table 1 in the paper's layout" in (out / "report.md").read_text()
    assert report.main([str(root / "atari"), "--out", str(out), *given]) == 0
    printed = capsys.readouterr().out
    assert "Pong" in printed and "19.7" in printed and "20.7" in printed
    assert "ours >= paper's PPO on 0 of 1 games" in printed
    assert "(2) last 100 episodes, ours: clip eps=0.1 0, kl_fixed beta=3 1, tie 0" in printed
    md = (out / "report.md").read_text()
    assert "## Table 6 layout" in md and "## Table 2: games won" in md


def test_default_out_is_beside_what_it_reads(tmp_path: Path, monkeypatch, capsys) -> None:
    """Without --out the report goes into RUN/report (one DIR) or report/ in the folder holding the DIRs,
    never into the current directory; the last line printed says where."""
    runs = tmp_path / "runs"
    one = make_run(runs, "a", score=10.0, seed=0)
    make_run(runs, "b", score=20.0, seed=1)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    given = ["--random-score", "CartPole-v1=0", "--bootstrap", "0"]
    assert report.main([str(one), *given]) == 0
    assert (one / "report" / "report.md").is_file()
    assert capsys.readouterr().out.splitlines()[-1] == f"written to {one / 'report'}"
    assert report.main([str(runs / "a"), str(runs / "b"), *given]) == 0
    assert (runs / "report" / "report.md").is_file()
    assert capsys.readouterr().out.splitlines()[-1] == f"written to {runs / 'report'}"
    assert report.main([str(runs), *given]) == 0          # the reports written inside are not runs
    assert "report of 2 runs (0 skipped)" in capsys.readouterr().out
    assert list(elsewhere.iterdir()) == []
    assert report.default_out(["x"]) == Path("x/report")


def test_families_are_never_pooled(tmp_path: Path, capsys) -> None:
    """runs/ holding Pong, CartPole and Hopper runs: Table 1 counts Hopper only among the tasks of clip eps=0.2 and
    has no row for a variant run on Pong alone; Pong is in Table 6's layout, CartPole in its own family's table."""
    root = tmp_path / "runs"
    make_run(root, "hopper-clip", score=100.0, env="Hopper-v5")
    make_run(root, "hopper-none", score=20.0, env="Hopper-v5", objective="none")
    make_run(root, "cart-clip", score=200.0, env="CartPole-v1")
    make_run(root, "cart-kl", score=50.0, env="CartPole-v1", objective="kl_fixed", kl_beta=1.0)
    make_run(root, "pong-clip", score=-20.0, head=-21.0, env="ALE/Pong-v5")
    make_run(root, "pong-clip3", score=-19.0, head=-21.0, env="ALE/Pong-v5", clip_epsilon=0.3)
    given = ["--random-score", "Hopper-v5=10", "--random-score", "CartPole-v1=20", "--random-score",
             "ALE/Pong-v5=-21", "--bootstrap", "0"]
    assert report.main([str(root), *given]) == 0
    printed = capsys.readouterr().out
    table1 = printed.split("\n\n")[0].splitlines()
    assert table1[0].startswith("Table 1 (normalized score over Table 1's MuJoCo tasks: Hopper-v5;")
    rows = [ln.split() for ln in table1[2:]]
    # a row per variant run on Hopper (none for clip eps=0.3, run on Pong only), each over 1 task, beside the paper
    assert rows == [["none", "0.11", "0.11", "[0.11,", "0.11]", "1", "1/1", "-0.39"],
                    ["clip", "eps=0.2", "1.00", "1.00", "[1.00,", "1.00]", "1", "1/1", "0.82"]]
    assert "Normalized score, classic control (CartPole-v1;" in printed and "kl_fixed beta=1" in printed
    assert "Table 6" in printed and "Normalized score, Atari" not in printed
    rep = report.build_report([root], tmp_path / "o", random_scores_given={"Hopper-v5": 10.0, "CartPole-v1": 20.0,
                                                                          "ALE/Pong-v5": -21.0}, bootstrap=0,
                              plots=False, log=io.StringIO())
    assert list(rep.families) == ["Table 1 MuJoCo", "Atari", "classic control"]
    assert rep.table1["clip eps=0.2"]["envs"] == 1 and rep.table1["clip eps=0.2"]["runs"] == 1
    assert "clip eps=0.3" not in rep.table1 and set(rep.families["Atari"]) == {"clip eps=0.2", "clip eps=0.3"}
    md = (tmp_path / "o" / "report.md").read_text()
    assert "## Normalized score, classic control" in md and "### Atari" in md
