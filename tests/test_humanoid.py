"""Sec. 6.3 (the humanoids, Table 4): the KL-adaptive step size, the log-stdev schedule, the preset, the Bullet ids."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, one_line_error, subprocess_env, tiny
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_pipeline import config
from ppo_pipeline.algo.schedules import KL_STEP_FACTOR, KLAdaptiveStepSize, LinearAnneal, log_std, step_size
from ppo_pipeline.run.trainer import Trainer


# --- the step-size rule ---------------------------------------------------------------------------------
def rule(lr: float, kl: float, target: float, lo: float, hi: float) -> float:
    """The paper's footnote (Schulman's homework code), bounded as rsl_rl bounds it."""
    if kl > 2 * target:
        lr = lr / 1.5
    elif kl < target / 2:
        lr = lr * 1.5
    return min(max(lr, lo), hi)


@settings(max_examples=300, deadline=None)
@given(lr=st.floats(1e-5, 1e-2), kl=st.floats(0, 1), target=st.floats(1e-4, 0.1), lo=st.floats(1e-6, 1e-4),
       hi=st.floats(1e-3, 0.1))
def test_step_size_rule_is_the_papers_and_stays_in_bounds(lr, kl, target, lo, hi):
    s = KLAdaptiveStepSize(lr, target, lo, hi)
    f = s.factor(kl)
    assert f == (1 / KL_STEP_FACTOR if kl > 2 * target else KL_STEP_FACTOR if kl < target / 2 else 1.0)
    new = s.adapt(kl)
    assert new == pytest.approx(rule(lr, kl, target, lo, hi), rel=1e-12)
    assert lo <= new <= hi and s(123) == new


def test_step_size_state_round_trip():
    a = KLAdaptiveStepSize(3e-4, 0.01, 1e-5, 1e-2)
    a.adapt(0.0)
    b = KLAdaptiveStepSize(3e-4, 0.01, 1e-5, 1e-2)
    b.load_state_dict(a.state_dict())
    assert b(1) == a(1) == pytest.approx(4.5e-4)


def test_a_run_adapts_its_step_size_after_each_update(tmp_path):
    """metrics.csv: the step size of update k+1 is the rule applied to update k's step size and mean KL, for a clip
    run (the KL is measured for the rule) and beside the KL penalty's own beta rule."""
    for objective in ("clip", "kl_adaptive"):
        cfg = tiny(tmp=tmp_path, objective=objective, lr_schedule="kl_adaptive", lr=1e-3, lr_kl_target=0.002,
                   total_steps=256 * 6, eval_episodes=0, name=objective)
        Trainer(cfg).train()
        rows = list(csv.DictReader(open(cfg.run_path() / "metrics.csv")))
        lrs, kls = [float(r["lr"]) for r in rows], [float(r["kl"]) for r in rows]
        assert len(set(lrs)) > 1                      # it moved
        for k in range(len(rows) - 1):
            assert lrs[k + 1] == pytest.approx(rule(lrs[k], kls[k], 0.002, cfg.lr_min, cfg.lr_max), rel=1e-4)   # metrics.csv keeps 8 decimals


def test_the_step_size_is_in_the_checkpoint(tmp_path):
    cfg = tiny(tmp=tmp_path, preset=config.mujoco, env_id="Pendulum-v1", num_steps=64, minibatch_size=64,
               lr_schedule="kl_adaptive", total_steps=128, eval_episodes=0)
    t = Trainer(cfg)
    t.train()
    state = torch.load(cfg.run_path() / "checkpoint-00000002.pt", weights_only=False)
    assert state["step_size"]["value"] == t.ppo.lr[0](3)      # the step size the next update would train with


# --- the log-stdev schedule -------------------------------------------------------------------------------
def test_log_std_linear_anneal_is_table4s():
    s = LinearAnneal(-0.7, 100, final=-1.6)
    values = [s(k) for k in range(1, 101)]
    assert values[0] == -0.7 and values[-1] == pytest.approx(-1.6 + 0.9 / 100)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert log_std(config.mujoco()) is None          # learned by default


def test_a_scheduled_log_std_is_not_learned_and_is_what_the_run_samples_with(tmp_path):
    cfg = tiny(tmp=tmp_path, preset=config.mujoco, env_id="Pendulum-v1", num_steps=64, minibatch_size=64,
               log_std="anneal", log_std_init=-0.7, log_std_final=-1.6, total_steps=64 * 4, eval_episodes=0)
    t = Trainer(cfg)
    head = t.agent.policy_head
    assert "policy_head.log_std" not in dict(t.agent.named_parameters())
    assert all(p is not head.log_std for p in t.ppo.params)
    batches = []
    t.ppo.collector.collect = (lambda f: lambda: batches.append(f()) or batches[-1])(t.ppo.collector.collect)
    t.train()
    rows = list(csv.DictReader(open(cfg.run_path() / "metrics.csv")))
    schedule = LinearAnneal(-0.7, 4, final=-1.6)
    for k, (row, batch) in enumerate(zip(rows, batches), start=1):
        assert float(row["log_std"]) == pytest.approx(schedule(k))
        assert torch.allclose(batch["scale"], torch.tensor(math.exp(schedule(k))))
    learned = Trainer(tiny(tmp=tmp_path, preset=config.mujoco, env_id="Pendulum-v1", log_std_init=-0.5, name="l"))
    assert "policy_head.log_std" in dict(learned.agent.named_parameters())
    assert torch.all(learned.agent.policy_head.log_std == -0.5)


# --- the preset --------------------------------------------------------------------------------------------
def test_the_roboschool_preset_is_table4():
    c = config.roboschool()
    assert (c.num_steps, c.epochs, c.minibatch_size, c.gamma, c.gae_lambda, c.num_envs) == (512, 15, 4096, 0.99, 0.95, 32)
    assert (c.lr_schedule, c.log_std, c.log_std_init, c.log_std_final) == ("kl_adaptive", "anneal", -0.7, -1.6)
    assert c.env_id == "HumanoidBulletEnv-v0" and c.total_steps == 50_000_000 and not c.anneal
    config.validate(c)
    assert step_size(c).kl_target == c.lr_kl_target
    from ppo_pipeline import paper

    assert paper.FIGURE4_SETTINGS["HumanoidFlagrunBulletEnv-v0"]["num_envs"] == 128


def test_figure4_dry_run_plans_each_task_at_its_budget(capsys):
    from ppo_pipeline.launch import main

    assert main(config.roboschool, "t", ["--experiment", "figure4", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 run(s), 300,023,808 agent steps" in out        # 50M + 100M + 100M + 50M, whole batches
    for task in ("HumanoidBulletEnv-v0", "HumanoidFlagrunBulletEnv-v0", "HumanoidFlagrunHarderBulletEnv-v0",
                 "Humanoid-v5"):
        assert task in out


# --- the Bullet ids ------------------------------------------------------------------------------------------
BULLET_ARGS = ["--num-envs", "2", "--num-steps", "64", "--minibatch-size", "64", "--epochs", "2", "--total-steps", "256",
               "--eval-episodes", "1", "--eval-max-steps", "50", "--torch-threads", "1", "--no-progress"]


@pytest.mark.slow
@pytest.mark.parametrize("task", ["HumanoidBulletEnv-v0", "HumanoidFlagrunBulletEnv-v0",
                                  "HumanoidFlagrunHarderBulletEnv-v0"])
def test_bullet_tasks_train_through_the_recipe(tmp_path, task):
    out = subprocess.run([sys.executable, str(ROOT / "recipes" / "humanoid.py"), "--env-id", task, *BULLET_ARGS,
                          "--run-dir", str(tmp_path)], capture_output=True, text=True, env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "argv[0]" not in out.stdout + out.stderr and "pybullet build time" not in out.stdout + out.stderr
    rows = list(csv.DictReader(open(tmp_path / f"{task}__clip__s0" / "metrics.csv")))
    assert len(rows) == 2 and float(rows[0]["log_std"]) == -0.7


def test_bad_input_of_the_schedules_is_one_line(capsys, tmp_path):
    err = one_line_error(["--lr-schedule", "cosine", "--run-dir", str(tmp_path)], capsys)
    assert "cosine" in err and "kl_adaptive" in err
    err = one_line_error(["--lr-schedule", "kl_adaptive", "--lr-kl-target", "-0.01", "--run-dir", str(tmp_path)], capsys)
    assert "lr_kl_target=-0.01 must be > 0" in err
    err = one_line_error(["--lr-schedule", "kl_adaptive", "--lr", "0.5", "--run-dir", str(tmp_path)], capsys)
    assert "lr=0.5 must be in [lr_min" in err
    err = one_line_error(["--log-std", "anneal", "--log-std-final", "nan", "--run-dir", str(tmp_path)], capsys)
    assert "log_std_final=nan" in err


def test_bullet_id_without_the_extra_names_the_install_command(tmp_path):
    code = ("import sys; sys.modules['pybullet_envs_gymnasium'] = None; sys.path[0] = %r; "
            "from ppo_pipeline.launch import recipe_main; "
            "sys.exit(recipe_main('roboschool', 'd', ['--run-dir', %r]))" % (str(ROOT), str(tmp_path)))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(), timeout=120)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and 'pip install -e ".[bullet]"' in out.stderr, out.stderr
