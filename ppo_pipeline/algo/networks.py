"""The networks (obs -> features), with the paper's and the 37 details' initialization.

* Pixels (Atari): the Nature-DQN CNN (paper Sec. 6.2; 37 details: shared Nature CNN, scale to [0, 1]).
* Vectors: 64-64 tanh MLPs (paper Sec. 6.1).
* Orthogonal init (37 details #2): gain sqrt(2) on hidden layers, 0.01 on the policy head, 1 on the
  value head, biases 0 (the heads' gains are set where the heads are built, :mod:`.policy`).
"""

from __future__ import annotations

import math
from typing import TypeVar

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .kinds import MASK_KEY, channels_last, is_image

_Layer = TypeVar("_Layer", bound=nn.Linear | nn.Conv2d)
_Module = TypeVar("_Module", bound=nn.Module)


def layer_init(layer: _Layer, std: float = math.sqrt(2), bias: float = 0.0) -> _Layer:
    """Orthogonal weights with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    assert layer.bias is not None  # every layer here is built with its bias
    nn.init.constant_(layer.bias, bias)
    return layer


def in_memory_format(module: _Module, memory_format: torch.memory_format) -> _Module:
    """``module.to(memory_format=memory_format)``: its 4-d parameters and buffers in that layout, in place."""
    return module.to(memory_format=memory_format)  # type: ignore[call-overload]  # torch's Module.to stubs lack it


class NatureCNN(nn.Module):
    """Mnih et al. 2015: uint8 [C, 84, 84] -> /255 -> 32x8x8/4 -> 64x4x4/2 -> 64x3x3/1 -> 512, ReLU.

    The convolution weights are kept channels-last (NHWC): oneDNN's convolutions run about 20% faster
    that way on a CPU for the update's minibatches (``python -m ppo_pipeline.bench``); the math is the same.
    """

    def __init__(self, in_channels: int, out_features: int = 512, height: int = 84, width: int = 84):
        super().__init__()
        side = [((s - 8) // 4 + 1 - 4) // 2 + 1 - 2 for s in (height, width)]  # after the three convolutions
        net = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)),
            nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)),
            nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)),
            nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * side[0] * side[1], out_features)),
            nn.ReLU(),
        )
        self.net = in_memory_format(net, torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() == 4:
            return self.net(obs.float() / 255.0)
        lead = list(obs.shape[:-3])  # [B, T, C, H, W] sequences (an LSTM's replay): fold the leading dims
        out = self.net(obs.reshape([-1, *list(obs.shape[-3:])]).float() / 255.0)
        return out.reshape([*lead, -1])


class MLP(nn.Sequential):
    """``nn.Sequential`` whose forward calls ``F.linear`` and ``torch.tanh`` itself for its ``Linear`` and ``Tanh``
    layers (any other layer, e.g. a pack's stacked one, is called): the same ops on the same tensors as
    Sequential's forward, so the same results bit for bit, without a module call per layer: ~4 us of a 64-64 MLP's
    ~25 us on a 4-row batch (2-core reference CPU); the collector calls two MLPs per env step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._modules.values():
            if type(layer) is nn.Linear:
                # attributes, not _parameters: tensordict's to_module may put a plain tensor in __dict__
                x = F.linear(x, layer.weight, layer.bias)
            elif type(layer) is nn.Tanh:
                x = torch.tanh(x)
            else:
                x = layer(x)
        return x


def mlp(in_features: int, hidden: list[int], out_features: int, out_std: float) -> MLP:
    """Tanh MLP with orthogonal init; the last layer's gain is ``out_std``."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [layer_init(nn.Linear(in_features, h)), nn.Tanh()]
        in_features = h
    layers.append(layer_init(nn.Linear(in_features, out_features), std=out_std))
    return MLP(*layers)


class ImageEncoder(nn.Module):
    """uint8 image [.., C, H, W] or [.., H, W, C] -> the Nature CNN's features (SB3's 256 for Dict entries)."""

    def __init__(self, shape: tuple[int, ...], out_features: int = 256):
        super().__init__()
        self.hwc = channels_last(shape)
        c, h, w = (shape[2], shape[0], shape[1]) if self.hwc else shape
        self.cnn = NatureCNN(c, out_features, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hwc:
            x = x.movedim(-1, -3)
        lead = list(x.shape[:-3])
        flat = x.reshape([-1, *list(x.shape[-3:])])
        return self.cnn(flat).reshape([*lead, -1])


class CombinedEncoder(nn.Module):
    """A ``Dict`` observation -> one feature vector (SB3's ``CombinedExtractor`` is the model): each image entry
    through its own Nature CNN (256 features), each vector entry flattened, all concatenated in key order.
    The ``action_mask`` entry is the head's, not a feature."""

    def __init__(self, space: gym.spaces.Dict):
        super().__init__()
        self.keys: list[str] = [k for k in sorted(space.spaces) if k != MASK_KEY]
        shapes: dict[str, tuple[int, ...]] = {}
        for k in self.keys:
            shape = space[k].shape
            assert shape is not None  # check_spaces: Dict entries are Box spaces
            shapes[k] = shape
        self.images = nn.ModuleDict({k: ImageEncoder(shapes[k]) for k in self.keys if is_image(space[k])})
        self.vector_dims: dict[str, int] = {k: len(shapes[k]) for k in self.keys if not is_image(space[k])}
        self.out_features = 256 * len(self.images) + sum(int(np.prod(shapes[k])) for k in self.vector_dims)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for k in self.keys:
            x = obs[k]
            if k in self.images:
                parts.append(self.images[k](x))
            else:
                nd = self.vector_dims[k]
                parts.append((x.flatten(x.dim() - nd) if nd > 0 else x.unsqueeze(-1)).to(torch.float32))
        return torch.cat(parts, -1)
