"""Packs as runs (ppo_pipeline.pack): each member writes what a solo run writes and is read by report, play,
export and ``sweep status``; a member that diverges stops alone; a stopped pack resumes exactly (CPU,
in-process envs), on another core count too; CartPole seeds learn in a pack as alone; ``--pack`` from the
command line, with its one-line refusals."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny

from ppo_pipeline import config, launch
from ppo_pipeline.algo.ppo import PPO
from ppo_pipeline.pack import plan
from ppo_pipeline.run import checkpoint, training_state
from ppo_pipeline.run.callbacks import Callback
from ppo_pipeline.run.trainer import Trainer
from ppo_pipeline.rundir import read_rows

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = [{"objective": "clip", "clip_epsilon": 0.2}, {"objective": "kl_adaptive", "kl_target": 0.01},
              {"objective": "kl_fixed", "kl_beta": 1.0}, {"objective": "none"}]


def members(tmp: Path, n: int, preset=config.mujoco, **kw) -> list[config.Config]:
    base = dict(env_id="Pendulum-v1", num_steps=128, minibatch_size=64, epochs=2, total_steps=128 * 6,
                eval_every=3, eval_episodes=2, eval_max_steps=50, checkpoint_every=2, torch_threads=1)
    base.update(kw)
    return [tiny(preset, tmp / "runs", name=f"m{p}", seed=p, **{**base, **OBJECTIVES[p % 4]}) for p in range(n)]


def params(run: Path) -> dict[str, torch.Tensor]:
    return checkpoint.load(checkpoint.latest(run))["agent"]


@pytest.mark.slow
def test_members_are_runs_that_every_tool_reads(tmp_path):
    ms = members(tmp_path, 4)
    summaries = Trainer(ms, pack_dir=tmp_path / "packs" / "p").train()
    assert [s["status"] for s in summaries] == ["finished"] * 4
    for m in ms:
        run = m.run_path()
        for f in ("config.json", "metrics.csv", "episodes.csv", "summary.json", "member.json"):
            assert (run / f).is_file(), f
        rows = read_rows(run / "metrics.csv")
        assert [int(r["update"]) for r in rows] == list(range(1, 7))
        assert not np.isnan(rows[-1]["eval_return_mean"])
        summary = json.loads((run / "summary.json").read_text())
        assert summary["checkpoint"] == "checkpoint-00000006.pt"           # relative to the run directory
    # the pack's time split (what the bench prints): updates 2-6 are the whole less the first update
    pack = json.loads((tmp_path / "packs" / "p" / "pack.json").read_text())
    total, steady = pack["timing_s"], pack["timing_steady_s"]
    assert 0 < steady["update"] < total["update"] and 0 < steady["env"] < total["env"]
    kl = read_rows(ms[1].run_path() / "metrics.csv")
    assert not np.isnan(kl[0]["kl_beta"]) and np.isnan(kl[0]["clip_fraction"])   # a KL member logs beta, not clipping
    assert not np.isnan(read_rows(ms[0].run_path() / "metrics.csv")[0]["clip_fraction"])
    # play, export and report read a member's directory as a solo run's
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = str(ms[2].run_path())
    for args in (["-m", "ppo_pipeline.play", run, "--episodes", "1", "--max-steps", "20"],
                 ["-m", "ppo_pipeline.export", run, "--out", str(tmp_path / "pi.pt2")],
                 ["-m", "ppo_pipeline.report", str(tmp_path / "runs"), "--out", str(tmp_path / "rep"), "--bootstrap", "20"]):
        p = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode == 0, p.stderr
    assert "4 runs" in (tmp_path / "rep" / "report.md").read_text()


def test_a_diverging_member_stops_alone(tmp_path, monkeypatch, capsys):
    ms = members(tmp_path, 3)
    learn = PPO.learn

    def poisoned(self, batch):
        if self.collector.global_step >= 3 * 128:      # from update 3 on, member 1's weights are NaN
            with torch.no_grad():
                for p in self.params:
                    p[1] = float("nan")
        return learn(self, batch)

    monkeypatch.setattr(PPO, "learn", poisoned)
    summaries = Trainer(ms, pack_dir=tmp_path / "packs" / "p").train()
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "m1" in x)
    assert line.startswith("error: run m1: non-finite loss in update 3") and "last good checkpoint kept" in line
    job = json.loads((ms[1].run_path() / "job.json").read_text())
    assert job["state"] == "FAILED" and "non-finite" in job["error"]
    assert not (ms[1].run_path() / "summary.json").exists()
    assert len(read_rows(ms[1].run_path() / "metrics.csv")) == 2               # it stopped at its last good update
    for p in (0, 2):                                                           # the others went on to the end
        assert summaries[p]["status"] == "finished" and len(read_rows(ms[p].run_path() / "metrics.csv")) == 6
        assert all(torch.isfinite(v).all() for v in params(ms[p].run_path()).values())


@pytest.mark.parametrize("k", [1, 4])
def test_stopped_pack_resumes_exactly_on_any_core_count(tmp_path, k):
    """Stop after update k (a checkpoint), resume -- here with one core -- and end where an uninterrupted
    pack ends: metrics (but wall-clock columns), episodes and weights of every member (CPU, gymnasium's
    in-process envs)."""
    whole = members(tmp_path / "whole", 3, env_backend="gymnasium")
    Trainer(whole, pack_dir=tmp_path / "whole" / "pack").train()
    parts = members(tmp_path / "parts", 3, env_backend="gymnasium")
    Trainer(parts, pack_dir=tmp_path / "parts" / "pack").train(stop_after=k)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        paths, _ = training_state.pack_resume_points(tmp_path / "parts" / "pack", parts)
        Trainer(parts, pack_dir=tmp_path / "parts" / "pack").train(resume_from=paths)
    finally:
        os.sched_setaffinity(0, cores)
    def rows(run: Path) -> list[dict[str, str]]:
        with (run / "metrics.csv").open() as f:
            return [{c: v for c, v in r.items() if c not in ("sps", "time_s")} for r in csv.DictReader(f)]

    for a, b in zip(whole, parts):
        assert rows(a.run_path()) == rows(b.run_path())
        assert (a.run_path() / "episodes.csv").read_text() == (b.run_path() / "episodes.csv").read_text()
        pa, pb = params(a.run_path()), params(b.run_path())
        assert all(torch.equal(pa[n], pb[n]) for n in pa)


def test_a_member_resumes_alone_to_its_budget(tmp_path):
    """A pack stopped after update 2: its member's directory resumes as a solo run (its checkpoint is a solo one)
    and ends where the whole pack's member ends (in-process envs: exact), its summary written."""
    whole = members(tmp_path / "whole", 2, env_backend="gymnasium")
    Trainer(whole, pack_dir=tmp_path / "whole" / "pack").train()
    parts = members(tmp_path / "parts", 2, env_backend="gymnasium")
    Trainer(parts, pack_dir=tmp_path / "parts" / "pack").train(stop_after=2)
    alone = Trainer(parts[1]).train(resume_from=checkpoint.latest(parts[1].run_path()))
    assert alone["status"] == "finished" and (parts[1].run_path() / "summary.json").is_file()
    a, b = read_rows(whole[1].run_path() / "metrics.csv"), read_rows(parts[1].run_path() / "metrics.csv")
    assert [r["update"] for r in b] == list(range(1, 7))
    assert np.allclose([r["policy_loss"] for r in a], [r["policy_loss"] for r in b], rtol=1e-4, atol=1e-6)
    pa, pb = params(whole[1].run_path()), params(parts[1].run_path())
    assert all(torch.allclose(pa[n], pb[n], rtol=1e-4, atol=1e-5) for n in pa)


@pytest.mark.parametrize("env_id, kw", [
    ("examples.envs:DictCartPole", {"normalize_obs": True}),   # vector entries, statistics per entry and member
    ("examples.envs:MaskedChain", {}),                         # an action_mask entry beside a vector: the head's
    ("examples.envs:DictImage", {"normalize_obs": True}),      # an image entry (its Nature CNN) beside a vector
    ("examples.envs:MaskedChainMethod", {}),                   # action_masks(): moved into a Dict observation
    ("examples.envs:TargetCode", {}),                          # MultiDiscrete actions
], ids=["dict-cartpole", "masked-chain", "dict-image", "masked-method", "multi-discrete"])
def test_variant_members_are_their_solo_runs(tmp_path, env_id, kw):
    """A pack of Dict-observation runs (the Dict encoder stacked by vmap, observations a TensorDict of entries,
    member-major; a mask entry read by each member's head) or of multi-part actions: each member's first updates
    are its solo run's with the same seed -- loss terms, episodes, evaluation, weights and per-entry observation
    statistics (CPU, in-process envs)."""
    common = dict(env_id=env_id, num_envs=4, num_steps=32, minibatch_size=64, epochs=2, total_steps=128 * 3,
                  eval_every=3, eval_episodes=2, eval_max_steps=50, torch_threads=1, env_backend="gymnasium", **kw)
    pack = [tiny(config.classic, tmp_path / "pack", name=f"s{s}", seed=s, **common) for s in range(2)]
    Trainer(pack, pack_dir=tmp_path / "packs" / "p").train()
    for m in pack:
        solo = tiny(config.classic, tmp_path / "solo", name=m.name, seed=m.seed, **common)
        assert Trainer(solo).train()["status"] == "finished"
        a, b = read_rows(m.run_path() / "metrics.csv"), read_rows(solo.run_path() / "metrics.csv")
        assert [r["update"] for r in a] == [r["update"] for r in b] == [1, 2, 3]
        for col in ("policy_loss", "value_loss", "entropy", "approx_kl", "explained_variance", "eval_return_mean"):
            assert np.allclose([r[col] for r in a], [r[col] for r in b], rtol=1e-4, atol=1e-6, equal_nan=True), col
        assert (m.run_path() / "episodes.csv").read_text() == (solo.run_path() / "episodes.csv").read_text()
        ca, cb = (checkpoint.load(checkpoint.latest(r.run_path())) for r in (m, solo))
        assert ca["agent"].keys() == cb["agent"].keys()
        assert all(torch.allclose(ca["agent"][k], cb["agent"][k], rtol=1e-4, atol=1e-5) for k in ca["agent"])
        assert (ca["obs_norm"] is None) == (cb["obs_norm"] is None) == (not kw.get("normalize_obs"))
        for entry, stats in (cb["obs_norm"] or {}).items():      # the vector entries' (an image passes as it is)
            assert all(np.allclose(ca["obs_norm"][entry][k], v) for k, v in stats.items()), entry


def test_callbacks_reach_every_member(tmp_path):
    seen: list[tuple[str, int]] = []
    evaluated: list[str] = []

    class Record(Callback):
        def on_update(self, run, row):
            seen.append((run.cfg.name, row["update"]))

        def on_evaluation(self, run, update, returns):
            evaluated.append(run.cfg.name)
            assert len(returns) == 2 and run.agent.policy_head is not None

    ms = members(tmp_path, 3)
    Trainer(ms, [Record()], pack_dir=tmp_path / "packs" / "p").train()
    assert sorted(seen) == sorted((f"m{p}", u) for p in range(3) for u in range(1, 7))
    assert sorted(evaluated) == sorted(["m0", "m1", "m2"] * 2)


@pytest.mark.slow
def test_cartpole_seeds_learn_in_a_pack(tmp_path):
    """Every member of a pack of 4 CartPole seeds reaches a last-100 mean of 475 within the classic budget
    (100k steps), as the solo runs do (tests/test_learning.py)."""
    ms = [tiny(config.classic, tmp_path, name=f"s{s}", seed=s, total_steps=100_000, eval_episodes=0) for s in range(4)]
    summaries = Trainer(ms, pack_dir=tmp_path / "pack").train()
    scores = [s["last100_return_mean"] for s in summaries]
    assert all(x >= 475 for x in scores), scores


# ------------------------------------------------------------------------------------------------------
# The command line
# ------------------------------------------------------------------------------------------------------
def _error(argv: list[str], capsys, preset=config.mujoco) -> str:
    with pytest.raises(SystemExit) as e:
        launch.main(preset, "t", argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_pack_bad_input_is_one_line(tmp_path, capsys, monkeypatch):
    common = ["--sweep-dir", str(tmp_path / "s"), "--total-steps", "2048"]
    assert "--pack 0 must be >= 1" in _error(["--seeds", "0-1", "--pack", "0", *common], capsys)
    err = _error(["--env-id", "CartPole-v1", "--policy", "lstm", "--seeds", "0-1", "--pack", "2", *common], capsys,
                 preset=config.classic)
    assert "cannot train in a pack" in err and "lstm" in err
    monkeypatch.setattr(plan, "memory_available", lambda: 2**20)            # a machine with 1 MiB free
    assert "GiB, more than this machine has free" in _error(["--seeds", "0-3", "--pack", "4", *common], capsys)
    assert not (tmp_path / "s").exists()                                  # nothing started


def test_packs_group_runs_that_can_share():
    runs = []
    for env in ("Hopper-v5", "Walker2d-v5"):
        for lr in (3e-4, 1e-3):
            for seed in range(3):
                cfg = config.mujoco(env_id=env, lr=lr, seed=seed, objective="clip" if seed else "none")
                runs.append({"name": f"{env}-{lr}-{seed}", "config": dataclasses.asdict(cfg)})
    packs = plan.group(runs, 2)
    assert [len(p) for p in packs] == [2, 1] * 4          # per (env, lr): 3 seeds in packs of at most 2
    assert all(len({n.rsplit("-", 1)[0] for n in p}) == 1 for p in packs)   # never across env or lr
    assert plan.group(runs, 1) == [[r["name"]] for r in runs]


@pytest.mark.slow
def test_pack_sweep_from_the_command_line(tmp_path):
    """A grid with --pack: the dry run prints the packs; the sweep trains them, status shows them."""
    cmd = [sys.executable, str(ROOT / "recipes" / "mujoco.py"), "--env-id", "Pendulum-v1", "--seeds", "0-2",
           "--objective", "clip,kl_fixed", "--pack", "4", "--num-steps", "128", "--minibatch-size", "64",
           "--epochs", "1", "--total-steps", "256", "--eval-episodes", "1", "--eval-max-steps", "20",
           "--torch-threads", "1", "--no-progress", "--sweep-dir", str(tmp_path / "s")]
    p = subprocess.run([*cmd, "--dry-run"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and "packs: 2 of 2, 4 runs" in p.stdout, p.stdout + p.stderr
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    assert "6/6 runs finished" in p.stdout and "2/2 packs finished" in p.stdout
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert sorted(len(v) for v in manifest["packs"].values()) == [2, 4]
    assert np.all([r["pack"] for r in manifest["runs"]])
