"""Full resume: a CartPole run interrupted at any update and resumed ends exactly where an
uninterrupted run of the same seed ends (final parameters, optimizer state, ``metrics.csv`` except
the wall-clock columns, ``episodes.csv``), on CPU.

Interruptions covered: ``stop_after`` (a clean stop with a checkpoint), a crash after the last
periodic checkpoint (rows past it are redone, not duplicated), a signal arriving mid-update
(SIGUSR2, the preemption signal), and ``--resume RUN_DIR`` on the command line. Plus the refusal of
corrupt and foreign checkpoints.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny

from ppo_pipeline import launch
from ppo_pipeline.config import classic, mujoco
from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.metrics import TIMING_COLUMNS
from ppo_pipeline.run.trainer import Trainer, TrainingInterrupted

UPDATES = 6


def _cfg(tmp: Path, name: str, **kw):
    """CartPole, classic preset, 6 updates of 4 envs x 16 steps; obs/reward normalization on so
    their statistics must round-trip too; evaluation every 2 updates (it must not disturb RNG)."""
    base = dict(num_envs=4, num_steps=16, minibatch_size=32, epochs=2, total_steps=64 * UPDATES,
                normalize_obs=True, scale_reward=True, eval_every=2, eval_episodes=2, eval_max_steps=50,
                checkpoint_every=4, torch_threads=1, name=name)
    base.update(kw)
    return tiny(classic, tmp, **base)


def _rows(path: Path, drop: tuple[str, ...] = TIMING_COLUMNS) -> list[dict]:
    with path.open() as f:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(f)]


def _final(run: Path) -> dict:
    state = checkpoint.load(checkpoint.latest(run))
    return {"agent": state["agent"], "optimizer": state["optimizer"]["state"], "loss": state["loss"],
            "update": state["update"], "obs_norm": state["obs_norm"], "reward_scaler": state["reward_scaler"]}


def _assert_same_run(a: Path, b: Path) -> None:
    ra, rb = _rows(a / "metrics.csv"), _rows(b / "metrics.csv")
    assert [r["update"] for r in rb] == [str(u) for u in range(1, UPDATES + 1)], "missing or duplicate rows"
    assert ra == rb
    assert _rows(a / "episodes.csv", ()) == _rows(b / "episodes.csv", ())
    fa, fb = _final(a), _final(b)
    assert fa["update"] == fb["update"] == UPDATES
    for k in fa["agent"]:
        assert torch.equal(fa["agent"][k], fb["agent"][k]), k
    for k in fa["loss"]:
        assert torch.equal(fa["loss"][k], fb["loss"][k]), k
    for i in fa["optimizer"]:
        for k, v in fa["optimizer"][i].items():
            assert torch.equal(v, fb["optimizer"][i][k]), (i, k)
    for norm in ("obs_norm", "reward_scaler"):
        for k, v in fa[norm].items():
            assert np.array_equal(v, fb[norm][k]), (norm, k)


@pytest.fixture(scope="module", params=["clip", "kl_adaptive"])
def reference(request, tmp_path_factory) -> tuple[str, Path]:
    """The uninterrupted run, once per objective (kl_adaptive: beta must round-trip)."""
    tmp = tmp_path_factory.mktemp(f"ref_{request.param}")
    cfg = _cfg(tmp, "ref", objective=request.param)
    Trainer(cfg).train()
    return request.param, cfg.run_path()


@pytest.mark.parametrize("k", [1, 3, 4, 5])
def test_stop_and_resume_equals_uninterrupted(reference, tmp_path, k):
    objective, ref = reference
    cfg = _cfg(tmp_path, "cut", objective=objective)
    partial = Trainer(cfg).train(stop_after=k)
    assert partial["status"] == "partial" and partial["updates"] == k
    assert len(_rows(cfg.run_path() / "metrics.csv")) == k
    Trainer(cfg).train(resume_from=checkpoint.latest(cfg.run_path()))
    _assert_same_run(ref, cfg.run_path())


@pytest.fixture(scope="module")
def hopper_reference(tmp_path_factory) -> Path:
    cfg = _hopper(tmp_path_factory.mktemp("ref_hopper"), "ref")
    Trainer(cfg).train()
    return cfg.run_path()


def _hopper(tmp: Path, name: str):
    """Hopper-v5 (MuJoCo), Table 3 preset shrunk: 2 envs x 32 steps, so that random-policy episodes
    (~20-50 steps) span the resume point and reset right after it; normalization on."""
    return tiny(mujoco, tmp, env_id="Hopper-v5", num_envs=2, num_steps=32, minibatch_size=32, epochs=2,
                total_steps=64 * UPDATES, eval_every=2, eval_episodes=2, eval_max_steps=50, checkpoint_every=4,
                torch_threads=1, name=name)


@pytest.mark.parametrize("k", [1, 3])
def test_hopper_stop_and_resume_equals_uninterrupted(hopper_reference, tmp_path, k):
    """MuJoCo resume is exact: the simulator state (qpos, qvel, time, warm start, ...) and each env's
    random generator round-trip through the checkpoint, so the episode spanning the resume goes on where
    it was and the resets after it draw what the uninterrupted run drew."""
    cfg = _hopper(tmp_path, "cut")
    Trainer(cfg).train(stop_after=k)
    Trainer(cfg).train(resume_from=checkpoint.latest(cfg.run_path()))
    _assert_same_run(hopper_reference, cfg.run_path())


def test_crash_after_checkpoint_redoes_rows_without_duplicates(reference, tmp_path):
    """Killed at update 5 with the newest checkpoint at 4: rows 5.. are dropped and recomputed."""
    objective, ref = reference
    cfg = _cfg(tmp_path, "crash", objective=objective)
    Trainer(cfg).train(stop_after=5)
    run = cfg.run_path()
    checkpoint.path_for(run, 5).unlink()            # as if the process died before writing it
    assert checkpoint.latest(run) == checkpoint.path_for(run, 4)
    assert len(_rows(run / "metrics.csv")) == 5
    Trainer(cfg).train(resume_from=checkpoint.latest(run))
    _assert_same_run(ref, run)


@pytest.mark.parametrize("at", [1, 3, 5])
def test_signal_mid_update_checkpoints_at_update_end(reference, tmp_path, at):
    """SIGUSR2 (the preemption signal) lands in the middle of update ``at`` -- after the batch was
    collected, before the Adam steps: the update finishes, is checkpointed, and the run stops."""
    objective, ref = reference
    cfg = _cfg(tmp_path, "sig", objective=objective)
    trainer = Trainer(cfg)
    trainer.checkpoint_on_signal(signal.SIGUSR2)
    learn = trainer.ppo.learn

    calls = []

    def learn_with_signal(batch):
        calls.append(1)
        if len(calls) == at:                   # update ``at``: collected, not yet learned from
            os.kill(os.getpid(), signal.SIGUSR2)
        return learn(batch)

    trainer.ppo.learn = learn_with_signal
    before = signal.getsignal(signal.SIGUSR2)
    with pytest.raises(TrainingInterrupted) as info:
        trainer.train()
    assert signal.getsignal(signal.SIGUSR2) is before      # handlers restored
    assert info.value.update == at
    assert info.value.path == checkpoint.latest(cfg.run_path()) == checkpoint.path_for(cfg.run_path(), at)
    assert len(_rows(cfg.run_path() / "metrics.csv")) == at
    Trainer(cfg).train(resume_from=info.value.path)
    _assert_same_run(ref, cfg.run_path())


def test_cli_resume_run_dir(reference, tmp_path, capsys):
    objective, ref = reference
    cfg = _cfg(tmp_path, "cli", objective=objective)
    Trainer(cfg).train(stop_after=2)
    assert launch.main(classic, "t", ["--resume", str(cfg.run_path())]) == 0
    _assert_same_run(ref, cfg.run_path())
    assert "final eval return" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------
# bad checkpoints: one line naming the file, exit code 2, nothing started
# ----------------------------------------------------------------------------------------------------
def _cli_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as e:
        launch.main(classic, "t", argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def _stopped_run(tmp_path: Path, name: str = "bad", **kw) -> Path:
    cfg = _cfg(tmp_path, name, **kw)
    Trainer(cfg).train(stop_after=1)
    return cfg.run_path()


def test_corrupt_checkpoint_is_refused(tmp_path, capsys):
    run = _stopped_run(tmp_path)
    ck = checkpoint.latest(run)
    ck.write_bytes(ck.read_bytes()[:100])
    rows = (run / "metrics.csv").read_text()
    err = _cli_error(["--resume", str(run)], capsys)
    assert str(ck) in err and "corrupt" in err
    assert (run / "metrics.csv").read_text() == rows          # nothing started


def test_foreign_checkpoint_is_refused(tmp_path, capsys):
    run = _stopped_run(tmp_path)
    ck = checkpoint.latest(run)
    torch.save({"some": "other model"}, ck)
    err = _cli_error(["--resume", str(run)], capsys)
    assert str(ck) in err and "not a ppo-pipeline checkpoint" in err


def test_checkpoint_of_another_run_is_refused(tmp_path, capsys):
    run = _stopped_run(tmp_path)
    other = _stopped_run(tmp_path, "other", seed=7, objective="kl_adaptive")
    ck = checkpoint.latest(run)
    shutil.copy(checkpoint.latest(other), ck)
    err = _cli_error(["--resume", str(run)], capsys)
    assert str(ck) in err and "another run" in err


def test_resume_without_run_dir_is_refused(tmp_path, capsys):
    err = _cli_error(["--resume", str(tmp_path / "nope")], capsys)
    assert "nope" in err
