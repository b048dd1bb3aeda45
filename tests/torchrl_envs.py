"""torchrl env factories of a user's own, for tests/test_torchrl.py (``--env-id torchrl:tests.torchrl_envs:NAME``).

``pendulum``: gymnasium's Pendulum-v1 through torchrl's ``GymEnv`` (float64 observations made float32 by a
``DoubleToFloat``, a 200-step time limit). ``pendulum_batch(num_envs)``: the same, batched by the factory.
``bits``: a toy env whose action is a ``Binary`` vector, which the agent cannot produce.
``two_keys``: DMControl cheetah without concatenation (two observation keys, no ``observation``).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict
from torchrl.data import Binary, Composite, Unbounded
from torchrl.envs import (
    DMControlEnv,
    DoubleToFloat,
    EnvBase,
    GymEnv,
    SerialEnv,
    TransformedEnv,
)


def pendulum() -> EnvBase:
    return TransformedEnv(GymEnv("Pendulum-v1"), DoubleToFloat())


def pendulum_batch(num_envs: int) -> EnvBase:
    return SerialEnv(num_envs, pendulum)


class Bits(EnvBase):
    def __init__(self):
        super().__init__(batch_size=torch.Size([]))
        self.observation_spec = Composite(observation=Unbounded(shape=(3,)))
        self.action_spec = Binary(n=4, shape=(4,))
        self.reward_spec = Unbounded(shape=(1,))

    def _reset(self, td=None, **kw):
        return TensorDict({"observation": torch.zeros(3), "done": torch.zeros(1, dtype=torch.bool),
                           "terminated": torch.zeros(1, dtype=torch.bool)}, [])

    def _step(self, td):
        return TensorDict({"observation": torch.zeros(3), "reward": torch.zeros(1),
                           "done": torch.zeros(1, dtype=torch.bool), "terminated": torch.zeros(1, dtype=torch.bool)}, [])

    def _set_seed(self, seed):
        pass


def bits() -> EnvBase:
    return Bits()


def two_keys() -> EnvBase:
    return DMControlEnv("cheetah", "run")
