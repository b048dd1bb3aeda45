"""Sweeps with ``--launcher local`` (no SLURM): planning, the manifest, status/resume/cancel, and every
bad input as one ``error:`` line with exit code 2 before anything starts."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ppo_pipeline import launch
from ppo_pipeline.algo.ppo import PPO
from ppo_pipeline.cli import parse_seeds
from ppo_pipeline.config import ConfigError, classic
from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.metrics import TIMING_COLUMNS
from ppo_pipeline.sweeps import sweep

REPO = Path(__file__).resolve().parents[1]
TINY = ["--total-steps", "256", "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32",
        "--epochs", "1", "--eval-episodes", "1", "--eval-max-steps", "20", "--checkpoint-every", "2",
        "--torch-threads", "1", "--no-tensorboard", "--no-progress"]


def _metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def _error(argv: list[str], capsys, main=None) -> str:
    with pytest.raises(SystemExit) as e:
        (main or (lambda a: launch.main(classic, "t", a)))(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


# ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seeds", [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("3", [3]),
                                         ("0-2,7", [0, 1, 2, 7]), (" 1 , 1-2", [1, 2])])
def test_parse_seeds(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize("text", ["", "a", "4-1", "0-", "-3", "1,,2", "0..4", "1.5"])
def test_bad_seeds_one_line_exit_2(text, tmp_path, capsys):
    with pytest.raises(ConfigError):
        parse_seeds(text)
    err = _error(["--seeds", text, "--sweep-dir", str(tmp_path / "s")], capsys)
    assert "--seeds" in err and "does not parse" in err
    assert not (tmp_path / "s").exists()


def test_unknown_cluster_profile(tmp_path, capsys):
    err = _error(["--launcher", "slurm", "--cluster", "nosuch", "--seeds", "0-1", "--sweep-dir", str(tmp_path / "s")],
                 capsys)
    assert "unknown cluster profile 'nosuch'" in err and "local" in err
    assert not (tmp_path / "s").exists()


def test_existing_sweep_dir_is_refused(tmp_path, capsys):
    err = _error(["--seeds", "0-1", "--sweep-dir", str(tmp_path)], capsys)
    assert "exists" in err and "sweep resume" in err


def test_bad_env_in_list_is_refused(tmp_path, capsys):
    err = _error(["--env", "CartPole-v1,NoSuchEnv-v0", "--sweep-dir", str(tmp_path / "s")], capsys)
    assert "NoSuchEnv-v0" in err
    err = _error(["--objective", "clip,bogus", "--sweep-dir", str(tmp_path / "s")], capsys)
    assert "bogus" in err
    assert not (tmp_path / "s").exists()


def test_slurm_not_installed_says_how_to_start(tmp_path):
    """With no SLURM client on PATH the submit refuses in one line that names the local cluster script."""
    (tmp_path / "bin").mkdir()
    env = {**os.environ, "PATH": str(tmp_path / "bin")}
    p = subprocess.run([sys.executable, str(REPO / "recipes" / "classic_control.py"), "--launcher", "slurm",
                        "--seeds", "0-1", "--sweep-dir", str(tmp_path / "s"), *TINY],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: SLURM is not reachable") and p.stderr.count("\n") == 1, p.stderr
    assert "slurm/local_cluster.sh start" in p.stderr
    assert not (tmp_path / "s").exists()


def test_sweep_cli_bad_dir(tmp_path, capsys):
    err = _error(["status", str(tmp_path)], capsys, main=sweep.main)
    assert "not a sweep directory" in err


# ----------------------------------------------------------------------------------------------------
def test_single_run_path_unchanged(tmp_path, capsys):
    """No sweep option: one run in run_dir/<name>, as before."""
    assert launch.main(classic, "t", ["--run-dir", str(tmp_path), *TINY]) == 0
    assert (tmp_path / "CartPole-v1__clip__s0" / "summary.json").is_file()
    assert not list(tmp_path.glob("manifest.json"))


def test_local_sweep_interrupted_then_resumed(tmp_path, capsys, monkeypatch):
    """2 envs x 1 seed, here. SIGTERM in the middle of update 2 of the first run stops the sweep after
    a checkpoint; ``sweep resume`` finishes it; the interrupted run equals an uninterrupted twin."""
    sdir = tmp_path / "sweep"
    learn = PPO.learn
    fired = []

    def learn_with_sigterm(self, batch):
        if self.collector.global_step == 2 * self.cfg.num_envs * self.cfg.num_steps and not fired:   # update 2
            fired.append(self.cfg.run_name())
            os.kill(os.getpid(), signal.SIGTERM)
        return learn(self, batch)

    monkeypatch.setattr(PPO, "learn", learn_with_sigterm)
    argv = ["--env", "CartPole-v1,Acrobot-v1", "--seeds", "0", "--sweep-dir", str(sdir), *TINY]
    assert launch.main(classic, "t", argv) == 130
    monkeypatch.setattr(PPO, "learn", learn)

    manifest = json.loads((sdir / "manifest.json").read_text())
    assert [r["name"] for r in manifest["runs"]] == ["CartPole-v1__clip__s0", "Acrobot-v1__clip__s0"]
    assert manifest["runs"][0]["config"]["seed"] == 0 and manifest["launcher"] == "local"
    rows = {r.run: r for r in sweep.status(sdir)}
    assert rows["CartPole-v1__clip__s0"].state == "INTERRUPTED" and rows["CartPole-v1__clip__s0"].updates == 2
    assert rows["Acrobot-v1__clip__s0"].state == "NOT_STARTED"

    capsys.readouterr()
    assert sweep.main(["resume", str(sdir)]) == 0
    assert sweep.main(["status", str(sdir)]) == 0
    out = capsys.readouterr().out
    assert "2/2 runs finished" in out and "100%" in out
    assert sweep.main(["resume", str(sdir)]) == 0
    assert "nothing to resume" in capsys.readouterr().out
    assert sweep.main(["cancel", str(sdir)]) == 0
    assert "nothing to cancel" in capsys.readouterr().out

    # the uninterrupted twin of the interrupted run
    twin = tmp_path / "twin"
    assert launch.main(classic, "t", ["--env", "CartPole-v1", "--seeds", "0", "--sweep-dir", str(twin), *TINY]) == 0
    a, b = sdir / "runs" / "CartPole-v1__clip__s0", twin / "runs" / "CartPole-v1__clip__s0"
    assert _metrics(a) == _metrics(b)
    sa, sb = checkpoint.load(checkpoint.latest(a))["agent"], checkpoint.load(checkpoint.latest(b))["agent"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_sweep_resume_no_progress_overrides_the_runs_setting(tmp_path, monkeypatch):
    """``sweep resume --no-progress`` runs the unfinished runs without progress bars this time; plain ``resume``
    keeps each run's own ``--progress`` (the manifest is not changed)."""
    sdir = tmp_path / "sweep"
    runs = sweep.plan(classic(total_steps=256), ["CartPole-v1"], [{}], [0], sdir)
    sweep.create(sdir, runs, launcher="local", cluster=None, max_parallel=None, argv=[])
    seen = []
    monkeypatch.setattr(sweep, "run_unit", lambda spec, signals: seen.append(spec["progress"]))
    assert sweep.main(["resume", str(sdir), "--no-progress"]) == 0
    assert sweep.main(["resume", str(sdir)]) == 0
    assert seen == [False, True]
    assert json.loads((sdir / "manifest.json").read_text())["runs"][0]["config"]["progress"] is True


def test_sweep_resume_refuses_corrupt_checkpoint(tmp_path, capsys, monkeypatch):
    sdir = tmp_path / "sweep"
    learn = PPO.learn

    def learn_with_sigterm(self, batch):
        if self.collector.global_step == 2 * self.cfg.num_envs * self.cfg.num_steps:   # update 2
            os.kill(os.getpid(), signal.SIGTERM)
        return learn(self, batch)

    monkeypatch.setattr(PPO, "learn", learn_with_sigterm)
    assert launch.main(classic, "t", ["--seeds", "0", "--sweep-dir", str(sdir), *TINY]) == 130
    monkeypatch.setattr(PPO, "learn", learn)
    ck = checkpoint.latest(sdir / "runs" / "CartPole-v1__clip__s0")
    ck.write_bytes(b"garbage")
    capsys.readouterr()
    err = _error(["resume", str(sdir)], capsys, main=sweep.main)
    assert str(ck) in err and "corrupt" in err
