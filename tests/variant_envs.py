"""The docs' example envs under the test suite's former name: ``examples/envs.py`` is their one definition.

Kept so that the ids ``variant_envs:Name`` and ``tests.variant_envs:Name``, which committed results name
(``results/pomdp-lstm``, ``results/reproduce.sh``), resolve to those classes; the tests use ``examples.envs:Name``.
One env here is the tests' own: :class:`TupleEnv`, an observation space the agent refuses.
"""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym

try:
    import examples.envs  # noqa: F401
except ModuleNotFoundError:  # imported as `variant_envs` with only tests/ on the path: the root holds examples/
    sys.path.append(str(Path(__file__).resolve().parents[1]))

from examples.envs import (  # noqa: E402
    CartPoleNoVel,
    DictCartPole,
    DictImage,
    MaskedChain,
    MaskedChainMethod,
    TargetBits,
    TargetCode,
)

__all__ = ["CartPoleNoVel", "DictCartPole", "DictImage", "MaskedChain", "MaskedChainMethod", "TargetBits",
           "TargetCode", "TupleEnv"]


class TupleEnv(TargetBits):
    """An observation space the agent refuses (a Tuple)."""

    def __init__(self, render_mode: str | None = None):
        super().__init__()
        self.observation_space = gym.spaces.Tuple((gym.spaces.Discrete(2), gym.spaces.Discrete(3)))
