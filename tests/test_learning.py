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
def test_inverted_pendulum_eval_950_within_50k_steps(tmp_path):
    """The Table 3 preset's deterministic evaluation (10 episodes, 1000 the most) reaches 950 within 25 batches of
    2048. Measured with an evaluation every 5 batches (2026-12-04): 1000.0 at every evaluation from 20,480 steps
    on, for seeds 0, 1 and 2 (and to 151,552, this test's budget until then, for seed 0)."""
    cfg = tiny(config.mujoco, tmp_path, env_id="InvertedPendulum-v5", total_steps=51_200, eval_every=0)
    summary = Trainer(cfg).train()
    assert summary["final_eval_return_mean"] >= 950, summary
