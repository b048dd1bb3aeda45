"""The networks (obs -> features), with the paper's and the 37 details' initialization.

* Pixels (Atari): the Nature-DQN CNN (paper Sec. 6.2; 37 details: shared Nature CNN, scale to [0, 1]).
* Vectors: 64-64 tanh MLPs (paper Sec. 6.1).
* Orthogonal init (37 details #2): gain sqrt(2) on hidden layers, 0.01 on the policy head, 1 on the
  value head, biases 0 (the heads' gains are set where the heads are built, :mod:`.policy`).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class NatureCNN(nn.Module):
    """Mnih et al. 2015: uint8 [C, 84, 84] -> /255 -> 32x8x8/4 -> 64x4x4/2 -> 64x3x3/1 -> 512, ReLU.

    The convolution weights are kept channels-last (NHWC): oneDNN's convolutions run about 20% faster
    that way on a CPU for the update's minibatches (``python -m ppo_pipeline.bench``); the math is the same.
    """

    def __init__(self, in_channels: int, out_features: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, out_features)), nn.ReLU(),
        ).to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0)


def mlp(in_features: int, hidden: list[int], out_features: int, out_std: float) -> nn.Sequential:
    """Tanh MLP with orthogonal init; the last layer's gain is ``out_std``."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [layer_init(nn.Linear(in_features, h)), nn.Tanh()]
        in_features = h
    layers.append(layer_init(nn.Linear(in_features, out_features), std=out_std))
    return nn.Sequential(*layers)
