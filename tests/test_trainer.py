"""The trainer: a run writes every output; same seed -> same metrics; a NaN stops training and keeps the
checkpoint; the paper's beta rule runs once per update."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import tiny

from ppo_pipeline import config, launch
from ppo_pipeline.envs import spec_of
from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.metrics import METRIC_COLUMNS, TIMING_COLUMNS
from ppo_pipeline.run.trainer import Trainer
from ppo_pipeline.rundir import read_rows

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_atari_recipe_end_to_end_pong_writes_every_output(tmp_path):
    """python recipes/atari.py on Pong for 2 updates x 8 actors x 128 steps = 2048 steps (8192 frames)."""
    p = subprocess.run([sys.executable, str(ROOT / "recipes" / "atari.py"), "--total-steps", "2048",
                        "--eval-episodes", "2", "--eval-max-steps", "200", "--run-dir", str(tmp_path),
                        "--no-progress"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    run = tmp_path / "ALE-Pong-v5__clip__s0"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["env_id"] == "ALE/Pong-v5" and cfg["num_envs"] == 8 and cfg["epochs"] == 3
    assert spec_of(config.atari(env_id=cfg["env_id"], env_backend=cfg["env_backend"])).backend == "envpool"  # auto
    rows = read_rows(run / "metrics.csv")
    assert [r["update"] for r in rows] == [1, 2] and rows[-1]["step"] == 2048
    header = (run / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == METRIC_COLUMNS
    for col in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
                "lr", "clip_epsilon", "sps"):
        assert all(r[col] == r[col] for r in rows), col  # not NaN
    assert rows[0]["lr"] == pytest.approx(2.5e-4) and rows[1]["lr"] == pytest.approx(1.25e-4)  # alpha 1 -> 0
    assert rows[1]["clip_epsilon"] == pytest.approx(0.05)
    assert rows[-1]["eval_return_mean"] == rows[-1]["eval_return_mean"]
    summary = json.loads((run / "summary.json").read_text())
    for key in ("final_eval_return_mean", "last100_return_mean", "train_return_mean_all", "wall_time_s"):
        assert key in summary
    assert summary["status"] == "finished" and summary["total_steps"] == 2048
    assert checkpoint.latest(run) is not None
    assert any((run / "tb").iterdir())
    assert (run / "episodes.csv").read_text().startswith("step,return,length")


def _metrics_without_timing(path: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in read_rows(path)]


def test_same_seed_same_metrics_on_cpu(tmp_path):
    runs = []
    for name in ("a", "b"):
        cfg = tiny(config.classic, tmp_path, name=name, total_steps=256 * 6, eval_every=3)
        Trainer(cfg).train()
        runs.append(tmp_path / name / "metrics.csv")
    a, b = (_metrics_without_timing(p) for p in runs)
    assert len(a) == 6
    assert json.dumps(a) == json.dumps(b)  # NaN-safe exact comparison
    other = tiny(config.classic, tmp_path, name="c", seed=1, total_steps=256 * 6, eval_every=3)
    Trainer(other).train()
    assert json.dumps(_metrics_without_timing(tmp_path / "c" / "metrics.csv")) != json.dumps(a)


def test_nan_loss_stops_with_update_named_and_last_checkpoint_kept(tmp_path, capsys):
    cfg = tiny(config.classic, tmp_path, name="nan", total_steps=256 * 10, checkpoint_every=1)
    Trainer(cfg).train(stop_after=2)
    run = tmp_path / "nan"
    good = checkpoint.latest(run)
    assert good is not None and good.name == "checkpoint-00000002.pt"
    before = good.read_bytes()
    # The run goes on with a step size that blows the parameters up to inf/NaN in update 3.
    cfg_json = json.loads((run / "config.json").read_text())
    cfg_json.update(lr=1e35, max_grad_norm=0.0)
    (run / "config.json").write_text(json.dumps(cfg_json))
    rc = launch.main(config.classic, "test", ["--resume", str(run)])
    assert rc == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite loss" in err[0] and "in update 3" in err[0]
    assert str(good) in err[0]
    assert checkpoint.latest(run) == good and good.read_bytes() == before
    checkpoint.load(good)  # still a valid checkpoint


def test_trainer_applies_paper_beta_rule_once_per_update(tmp_path):
    """kl_adaptive: the beta of update u+1 is the paper's rule (Sec. 4) applied once to the beta and the
    batch KL d of update u, as logged in metrics.csv."""
    cfg = tiny(config.classic, tmp_path, name="kl", objective="kl_adaptive", total_steps=256 * 5,
               kl_target=0.003, kl_beta=1.0)
    Trainer(cfg).train()
    rows = read_rows(tmp_path / "kl" / "metrics.csv")
    assert rows[0]["kl_beta"] == 1.0
    for prev, cur in zip(rows, rows[1:]):
        d, beta = prev["kl"], prev["kl_beta"]
        expected = beta / 2 if d < cfg.kl_target / 1.5 else beta * 2 if d > 1.5 * cfg.kl_target else beta
        assert cur["kl_beta"] == pytest.approx(expected), (prev, cur)
    assert len({r["kl_beta"] for r in rows}) > 1  # the rule did move beta in this run


@pytest.mark.slow
def test_compiled_update_matches_eager(tmp_path):
    """--compile on: the compiled update step gives the eager one's loss terms and gradients on the same
    minibatch (float32 noise apart), and a run with it trains to the end."""
    import torch

    from ppo_pipeline.algo.objectives import loss_step

    cfg = tiny(config.mujoco, tmp_path, env_id="Hopper-v5", name="on", compile="on", num_steps=256,
               minibatch_size=64, epochs=2, total_steps=512, eval_episodes=0, torch_threads=1)
    trainer = Trainer(cfg)
    ppo = trainer.ppo
    assert ppo.objective._step.compiled and ppo.collector.sample.compiled
    ppo.collector.reset([0])
    batch = ppo.collector.collect()
    ppo.gae(batch)
    mb = batch.reshape(-1)[:64]
    results = []
    for step in (loss_step(ppo.objective.loss), torch.compile(loss_step(ppo.objective.loss))):
        ppo.adam.zero_grad()
        terms = step(mb)
        results.append((terms, [p.grad.clone() for p in ppo.params]))
    (eager, g_eager), (compiled, g_compiled) = results
    for k in eager:
        assert float(compiled[k]) == pytest.approx(float(eager[k]), rel=1e-4, abs=1e-6), k
    for a, b in zip(g_eager, g_compiled):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-6)
    summary = trainer.train()
    assert summary["status"] == "finished" and ppo.objective._step.compiled


def test_hooks_see_each_update_and_evaluation_and_can_stop_the_run(tmp_path):
    """Callbacks: on_update gets every metrics row, on_evaluation every evaluation's returns; a hook that
    returns False stops the run after that update, checkpointed, and --resume continues it to the end."""
    from ppo_pipeline.run import checkpoint
    from ppo_pipeline.run.callbacks import Callback

    seen: dict[str, list] = {"rows": [], "evals": []}

    class Watch(Callback):
        def on_update(self, trainer, row):
            seen["rows"].append(row["update"])
            row["my_metric"] = 2 * row["update"]          # a metric of one's own goes along
            return row["update"] < 3                       # stop after update 3

        def on_evaluation(self, trainer, update, returns):
            seen["evals"].append((update, len(returns)))

    cfg = tiny(config.classic, tmp_path, name="hooks", total_steps=256 * 6, eval_every=2, eval_episodes=2)
    summary = Trainer(cfg, callbacks=[Watch()]).train()
    assert seen["rows"] == [1, 2, 3] and seen["evals"] == [(2, 2)]
    assert summary["updates"] == 3 and summary["status"] == "partial"
    assert checkpoint.latest(cfg.run_path()).name == "checkpoint-00000003.pt"
    assert summary["checkpoint"] == "checkpoint-00000003.pt"        # relative to the run directory
    rest = Trainer(cfg).train(resume_from=checkpoint.latest(cfg.run_path()))
    assert rest["updates"] == 6 and rest["status"] == "finished"


def test_compile_failure_falls_back_but_runtime_errors_propagate(capsys):
    """MaybeCompiled: only a failure to compile runs eagerly (one warning line); an error of the
    computation itself is raised as it is, compiled or not, at the first call or later."""
    import torch

    from ppo_pipeline.algo.compiling import MaybeCompiled

    def cannot_compile(gm, inputs):             # a backend that fails, as inductor does without a compiler
        raise RuntimeError("no C++ compiler here")

    def double(x):
        return x * 2

    fallback = MaybeCompiled(double, True, "update")
    fallback.fn = torch.compile(double, backend=cannot_compile)
    assert torch.equal(fallback(torch.ones(2)), torch.full((2,), 2.0)) and not fallback.compiled
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "torch.compile of the update failed" in err and "running it eager" in err

    def matmul(x):
        return x @ torch.ones(3, 3)

    broken = MaybeCompiled(matmul, True, "update")
    broken.fn = torch.compile(matmul, backend="eager", dynamic=False)
    assert broken(torch.ones(2, 3)).shape == (2, 3)                  # compiles and runs
    for bad in (torch.ones(2, 2), torch.ones(4, 5)):                  # later calls: a real shape error
        with pytest.raises(RuntimeError):
            broken(bad)
    assert broken.compiled and "running it eager" not in capsys.readouterr().err
