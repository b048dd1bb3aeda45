"""Learning tests on the real envs with fixed seeds, at budgets that pass with margin.

Figures on the reference 2-core CPU (seed 0): CartPole-v1 reaches a last-100 training mean of 500
and an evaluation return of 500 by ~60k of its 100k steps; InvertedPendulum-v5 evaluates at 1000
well before its 150k steps. Each test takes tens of seconds to a few minutes.
"""

from __future__ import annotations

import pytest
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.run.trainer import Trainer


@pytest.mark.slow
def test_cartpole_mean_return_475_within_100k_steps(tmp_path):
    cfg = tiny(config.classic, tmp_path, total_steps=100_352, eval_every=0)  # 392 batches of 8 x 32
    summary = Trainer(cfg).train()
    assert summary["total_steps"] <= 100_352
    assert summary["last100_return_mean"] >= 475, summary
    assert summary["final_eval_return_mean"] >= 475, summary


@pytest.mark.slow
def test_inverted_pendulum_eval_950_within_150k_steps(tmp_path):
    cfg = tiny(config.mujoco, tmp_path, env_id="InvertedPendulum-v5", total_steps=151_552, eval_every=0)
    summary = Trainer(cfg).train()  # 74 batches of 2048 (Table 3 preset)
    assert summary["final_eval_return_mean"] >= 950, summary
