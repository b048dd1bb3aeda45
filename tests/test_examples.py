"""The docs' example envs (``examples/envs.py``) are the test suite's ``tests/variant_envs.py`` ones, step
for step: the figures measured on the fixtures (docs/results.md) hold for the envs the docs point users at."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import variant_envs as fixtures

_spec = importlib.util.spec_from_file_location("examples.envs", Path(__file__).resolve().parents[1] / "examples" / "envs.py")
examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(examples)

NAMES = ["CartPoleNoVel", "MaskedChain", "MaskedChainMethod", "DictCartPole", "DictImage", "TargetCode", "TargetBits"]


def _equal(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, tuple):
        return len(a) == len(b) and all(map(_equal, a, b))
    return np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("name", NAMES)
def test_example_env_equals_fixture(name):
    ours, theirs = getattr(examples, name)(), getattr(fixtures, name)()
    assert ours.observation_space == theirs.observation_space and ours.action_space == theirs.action_space
    ours.action_space.seed(0)
    for seed in (0, 1):
        assert _equal(ours.reset(seed=seed), theirs.reset(seed=seed))
        for _ in range(60):
            action = ours.action_space.sample()
            a, b = ours.step(action), theirs.step(action)
            assert _equal(a[:4], b[:4])
            if a[2] or a[3]:
                assert _equal(ours.reset(), theirs.reset())
