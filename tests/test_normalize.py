"""Observation normalization and reward scaling (ppo_pipeline.algo.normalize)."""

from __future__ import annotations

import numpy as np

from ppo_pipeline.algo import normalize


def test_obs_normalizer_frozen_copy_does_not_move():
    n = normalize.ObsNormalizer((3,), clip=10.0)
    rng = np.random.default_rng(0)
    for _ in range(10):
        n(rng.normal(5.0, 2.0, size=(4, 3)))
    frozen = n.frozen_copy()
    before = frozen.state_dict()
    out = frozen(rng.normal(100.0, 1.0, size=(4, 3)))
    assert np.array_equal(before["mean"], frozen.rms.mean) and out.max() == 10.0
    assert abs(float(n(np.full((1, 3), 5.0), update=False).mean())) < 0.5



def test_reward_scaler_divides_by_return_std():
    s = normalize.RewardScaler(2, gamma=0.99, clip=10.0)
    for _ in range(200):
        out = s(np.array([1.0, 1.0]), np.array([False, False]))
    assert np.allclose(out, 1.0 / np.sqrt(s.rms.var + 1e-8))
