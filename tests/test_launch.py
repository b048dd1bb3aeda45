"""Held-out reliability findings (issue 13) and the run-directory rules (issue 12): a kill -9 at any
moment leaves a run that ``--resume`` finishes with nothing lost; a second run never mixes with the
first; every bad input is one ``error:`` line and exit code 2, before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppo_pipeline import config, launch, rundir
from ppo_pipeline.cli import parse_seeds
from ppo_pipeline.config import ConfigError
from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.metrics import TIMING_COLUMNS
from ppo_pipeline.sweeps import sweep

ROOT = Path(__file__).resolve().parents[1]
RECIPE = str(ROOT / "recipes" / "classic_control.py")
UPDATES = 6
TINY = ["--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32", "--epochs", "2",
        "--total-steps", str(64 * UPDATES), "--normalize-obs", "--scale-reward", "--eval-every", "2",
        "--eval-episodes", "2", "--eval-max-steps", "50", "--checkpoint-every", "2", "--torch-threads", "1",
        "--no-progress", "--no-tensorboard"]


def _error(argv: list[str], capsys, main=None) -> str:
    with pytest.raises(SystemExit) as e:
        (main or (lambda a: launch.main(config.classic, "t", a)))(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _rows(run: Path, name: str = rundir.METRICS) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in rundir.read_rows(run / name)]


def _same_run(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    assert [r["update"] for r in rb] == list(range(1, UPDATES + 1)), "missing or duplicate rows"
    assert json.dumps(ra) == json.dumps(rb)              # NaN-safe
    assert _rows(a, rundir.EPISODES) == _rows(b, rundir.EPISODES)
    sa, sb = (checkpoint.load(checkpoint.latest(p))["agent"] for p in (a, b))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def _py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ref")
    p = _py(RECIPE, *TINY, "--run-dir", str(tmp), "--name", "ref")
    assert p.returncode == 0, p.stderr
    return tmp / "ref"


# ----------------------------------------------------------------------------------------------------
# kill -9 at any moment
# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kills", [
    [("startup", 1)],                       # config.json written, no checkpoint yet
    [("checkpoint", 1)],                    # checkpoint 0's temp file written, not renamed
    [("update", 3)],                        # mid-update, newest checkpoint at update 2
    [("checkpoint", 3)],                    # checkpoint 4 half-written
    [("update", 4), ("truncate", 1)],       # then killed again while --resume cuts metrics.csv
], ids=["startup", "first-checkpoint", "update", "checkpoint-write", "log-truncation"])
@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_loses_nothing(reference, tmp_path, kills):
    run = tmp_path / "cut"
    for i, (point, n) in enumerate(kills):
        args = ["--resume", str(run), "--no-progress"] if i else [*TINY, "--run-dir", str(tmp_path), "--name", "cut"]
        p = _py(str(ROOT / "tests" / "kill_at.py"), point, str(n), *args)
        assert p.returncode == -9, (point, p.returncode, p.stderr[-2000:])
    p = _py(RECIPE, "--resume", str(run), "--no-progress")
    assert p.returncode == 0, p.stderr[-2000:]
    _same_run(reference, run)


def test_log_truncation_is_atomic(tmp_path, monkeypatch):
    """A crash while metrics.csv is rewritten leaves the old file whole, never a headless or cut one."""
    from ppo_pipeline.run.metrics import METRIC_COLUMNS, CsvLog

    log = CsvLog(tmp_path / "metrics.csv", METRIC_COLUMNS)
    log.write({"update": u, "step": u * 10} for u in range(1, 6))
    before = (tmp_path / "metrics.csv").read_text()

    def crash(src, dst):
        raise OSError("killed")

    monkeypatch.setattr("ppo_pipeline.rundir.os.replace", crash)
    with pytest.raises(OSError):
        log.truncate(2)
    assert (tmp_path / "metrics.csv").read_text() == before


# ----------------------------------------------------------------------------------------------------
# a second run never mixes with the first
# ----------------------------------------------------------------------------------------------------
def test_second_run_into_the_same_directory_is_refused(reference, capsys):
    err = _error([*TINY, "--run-dir", str(reference.parent), "--name", "ref"], capsys)
    assert "already holds a run" in err and f"--resume {reference}" in err and "--name" in err


def test_resume_of_a_config_without_checkpoint_starts_from_the_beginning(reference, tmp_path):
    run = tmp_path / "cut"
    run.mkdir()
    (run / "config.json").write_text((reference / "config.json").read_text().replace(str(reference.parent), str(tmp_path)))
    p = _py(RECIPE, "--resume", str(run), "--no-progress")
    assert p.returncode == 0 and "starting the run from the beginning" in p.stdout, p.stderr
    _same_run(reference, run)


# ----------------------------------------------------------------------------------------------------
# --resume: what it takes
# ----------------------------------------------------------------------------------------------------
def _copy_run(reference: Path, tmp: Path) -> Path:
    import shutil

    run = tmp / "copy"
    shutil.copytree(reference, run)
    return run


def test_resume_empty_is_refused(capsys):
    assert "--resume '' is empty" in _error(["--resume", ""], capsys)


def test_resume_with_other_options_is_refused(reference, tmp_path, capsys):
    run = _copy_run(reference, tmp_path)
    err = _error(["--resume", str(run), "--lr", "0.5"], capsys)
    assert "--lr cannot be given with --resume" in err and "config.json" in err


@pytest.mark.parametrize("content, needle", [
    ("[1, 2, 3]", "is not a JSON object"),
    ('"lr": "abc"', "lr='abc' must be a number"),
    ('"num_steps": "2048"', "num_steps='2048' must be an integer"),
    ('"hidden_sizes": [64, "x"]', "hidden_sizes=[64, 'x'] must be a list of integers"),
    ("{not json", "config.json is not valid JSON"),
])
def test_edited_config_json_is_one_line(reference, tmp_path, capsys, content, needle):
    run = _copy_run(reference, tmp_path)
    cfg = json.loads((run / "config.json").read_text())
    if content.startswith('"'):
        key, value = content.split(": ", 1)
        cfg[json.loads(key)] = json.loads(value)
        text = json.dumps(cfg)
    else:
        text = content
    (run / "config.json").write_text(text)
    assert needle in _error(["--resume", str(run)], capsys)


def test_corrupt_newest_checkpoint_offers_the_previous_one(reference, tmp_path, capsys):
    run = _copy_run(reference, tmp_path)
    newest = checkpoint.latest(run)
    previous = checkpoint.all_checkpoints(run)[-2]
    newest.write_bytes(newest.read_bytes()[:200])
    err = _error(["--resume", str(run)], capsys)
    assert "corrupt" in err and f"--resume {previous}" in err
    # the offered command works: it resumes from the intact checkpoint and finishes the run
    p = _py(RECIPE, "--resume", str(previous), "--no-progress")
    assert p.returncode == 0, p.stderr
    _same_run(reference, run)


# ----------------------------------------------------------------------------------------------------
# bad input elsewhere
# ----------------------------------------------------------------------------------------------------
def test_unwritable_run_dir_under_proc(capsys):
    assert "run_dir='/proc/x' is not writable" in _error(["--run-dir", "/proc/x"], capsys)


def test_huge_seed_range_is_refused_at_once(tmp_path, capsys):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError):
        parse_seeds("0-1000000")
    assert parse_seeds("0-9999")[-1] == 9999
    assert time.perf_counter() - t0 < 5.0            # no quadratic parsing (it hung before)
    assert "split the sweep" in _error(["--seeds", "0-1000000", "--sweep-dir", str(tmp_path / "s")], capsys)


def test_report_negative_bootstrap_seed(capsys, tmp_path):
    from ppo_pipeline import report

    assert "expected an integer >= 0" in _error([str(tmp_path), "--bootstrap-seed", "-1"], capsys, main=report.main)


def test_sweep_status_of_a_damaged_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": sweep.FORMAT, "runs": [{"name": "a"}]}))
    assert "run 0 has no name or no config" in _error(["status", str(tmp_path)], capsys, main=sweep.main)


def test_divergence_is_the_nan_stop_line(tmp_path):
    """--lr 1e20 blows the parameters up inside the first update: one line, exit 1, checkpoint 0 kept."""
    p = _py(RECIPE, "--lr", "1e20", "--total-steps", "2048", "--run-dir", str(tmp_path), "--no-progress")
    err = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode == 1 and len(err) == 1, p.stderr
    assert err[0].startswith("error: non-finite") and "in update 1" in err[0] and "checkpoint-00000000.pt" in err[0]
