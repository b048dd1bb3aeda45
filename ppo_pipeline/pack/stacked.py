"""P networks of the same shape as one network with a leading member dimension.

:func:`stack` turns P solo modules (the same architecture, each with its own weights, e.g. the agents of
P seeds) into one module whose parameters are the solo ones stacked on a new first dimension
(``[P, *solo_shape]``), and whose layers run all P members in one call: every ``nn.Linear`` becomes a
:class:`StackedLinear` (one batched matmul, ``baddbmm``, over inputs ``[P, ..., in]``); element-wise
layers (``Tanh``, ``ReLU``, ``Identity``) stay as they are; any other parameter (the Gaussian head's
``log_std``) is stacked as it is. :func:`member_state` takes member p's slice back out as a solo
``state_dict``, so a member's checkpoint is a solo checkpoint (play and export read it unchanged).

Because every op is per member (a batched matmul never mixes members), member p's outputs and gradients
are those of its solo module on its own inputs (float rounding apart; ``tests/test_pack.py``).
Convolutional trunks (Atari's CNN) are not stacked: such runs train solo (:mod:`.plan`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.Identity)


class StackedLinear(nn.Module):
    """P linear layers: ``y[p] = x[p] @ weight[p].T + bias[p]`` for inputs ``[P, ..., in]``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)          # [P, out, in]: solo layout, member p's is weight[p]
        self.bias = nn.Parameter(bias)              # [P, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, n_in = x.shape[0], x.shape[-1]
        flat = x.reshape(p, -1, n_in)
        y = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class Unstackable(TypeError):
    """A module with a layer :func:`stack` has no stacked version of (e.g. a convolution)."""


def stack(modules: list[nn.Module]) -> nn.Module:
    """One module running ``modules`` (P copies of one architecture) as members of a leading dimension."""
    if isinstance(modules[0], nn.Linear):
        return _stacked_linear(modules)
    out = copy.deepcopy(modules[0])
    _stack_into(out, modules)
    return out


def _stacked_linear(layers: list[nn.Module]) -> StackedLinear:
    return StackedLinear(torch.stack([k.weight.detach() for k in layers]).clone(),
                         torch.stack([k.bias.detach() for k in layers]).clone())


def _stack_into(target: nn.Module, sources: list[nn.Module]) -> None:
    for name, child in list(target.named_children()):
        kids = [getattr(s, name) for s in sources]
        if isinstance(child, nn.Linear):
            setattr(target, name, _stacked_linear(kids))
        elif isinstance(child, ELEMENTWISE) or type(child) is nn.Sequential or not _has_own_layers(child):
            _stack_into(child, kids)
        elif list(child.children()):
            _stack_into(child, kids)
        else:
            raise Unstackable(f"no stacked version of {type(child).__name__}")
    for name, param in list(target.named_parameters(recurse=False)):
        setattr(target, name, nn.Parameter(torch.stack([getattr(s, name).detach() for s in sources]).clone()))
    for name, buf in list(target.named_buffers(recurse=False)):
        target.register_buffer(name, torch.stack([getattr(s, name) for s in sources]).clone())


def _has_own_layers(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) and not list(module.children())


def member_state(stacked: nn.Module, p: int) -> dict[str, torch.Tensor]:
    """Member p's solo ``state_dict`` (the same keys as the solo module's)."""
    return {k: v[p].clone() for k, v in stacked.state_dict().items()}
