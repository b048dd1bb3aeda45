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

Networks with other layers (Atari's Nature CNN, a ``Dict`` observation's encoder) are stacked by
:class:`VmapStacked`: the solo module's own ``forward``, vectorized over the member dimension by
``torch.func.vmap`` with each member's slice of the stacked parameters (``torch.func.functional_call``), so any
layer stacks and every layer sees the solo shapes. The Table 3 MLPs keep the ``baddbmm`` path, whose pack figures
are measured (docs/speed.md); ``VmapStacked`` on them has not been timed against it yet.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

ELEMENTWISE = (nn.Tanh, nn.ReLU, nn.Identity)


class StackedLinear(nn.Module):
    """P linear layers: ``y[p] = x[p] @ weight[p].T + bias[p]`` for inputs ``[P, ..., in]``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight)  # [P, out, in]: solo layout, member p's is weight[p]
        self.bias = nn.Parameter(bias)  # [P, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p, n_in = x.shape[0], x.shape[-1]
        flat = x.reshape(p, -1, n_in)
        y = torch.baddbmm(self.bias.unsqueeze(1), flat, self.weight.transpose(1, 2))
        return y.reshape(*x.shape[:-1], y.shape[-1])


class Unstackable(TypeError):
    """A module with a layer :func:`stack` has no stacked version of (e.g. a convolution)."""


class VmapStacked(nn.Module):
    """P copies of any module as one: ``inner`` holds the solo module's structure with every parameter and buffer
    stacked ``[P, *solo_shape]``; :meth:`forward` runs the solo ``forward`` of member p on input slice p
    (``torch.func.vmap`` over dim 0 of the parameters, buffers and inputs, which may be tensors or dicts of them)."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.inner = copy.deepcopy(modules[0])
        for name, _ in list(self.inner.named_parameters()):
            _set(self.inner, name, nn.Parameter(torch.stack([m.get_parameter(name).detach() for m in modules]).clone()))
        for name, _ in list(self.inner.named_buffers()):
            _set(self.inner, name, torch.stack([m.get_buffer(name) for m in modules]).clone(), buffer=True)

    def _solo(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], *args: Any) -> Any:
        return torch.func.functional_call(self.inner, (params, buffers), args)

    def forward(self, *args: Any) -> Any:
        params: dict[str, torch.Tensor] = dict(self.inner.named_parameters())
        buffers: dict[str, torch.Tensor] = dict(self.inner.named_buffers())
        return torch.func.vmap(self._solo)(params, buffers, *args)


def _set(root: nn.Module, name: str, value: torch.Tensor, buffer: bool = False) -> None:
    owner, _, leaf = name.rpartition(".")
    module = root.get_submodule(owner) if owner else root
    delattr(module, leaf)
    if buffer:
        module.register_buffer(leaf, value)
    else:
        setattr(module, leaf, value)


def stack(modules: list[nn.Module]) -> nn.Module:
    """One module running ``modules`` (P copies of one architecture) as members of a leading dimension: Linear
    layers and element-wise ones by :class:`StackedLinear` (the Table 3 MLPs), any other network by
    :class:`VmapStacked`."""
    if isinstance(modules[0], nn.Linear):
        return _stacked_linear(modules)
    if not _linear_only(modules[0]):
        return VmapStacked(modules)
    out = copy.deepcopy(modules[0])
    _stack_into(out, modules)
    return out


def _linear_only(module: nn.Module) -> bool:
    """Every layer below ``module`` is Linear or element-wise (in Sequential containers): the ``baddbmm`` path
    stacks it, ``module``'s own forward (a head's) unchanged."""
    return all(isinstance(m, (nn.Linear, nn.Sequential, *ELEMENTWISE)) for m in module.modules() if m is not module)


def _stacked_linear(layers: list[nn.Module]) -> StackedLinear:
    return StackedLinear(
        torch.stack([k.get_parameter("weight").detach() for k in layers]).clone(),
        torch.stack([k.get_parameter("bias").detach() for k in layers]).clone(),
    )


def _stack_into(target: nn.Module, sources: list[nn.Module]) -> None:
    for name, child in list(target.named_children()):
        kids = [getattr(s, name) for s in sources]
        if isinstance(child, nn.Linear):
            setattr(target, name, _stacked_linear(kids))
        elif (
            isinstance(child, ELEMENTWISE)
            or type(child) is nn.Sequential
            or not _has_own_layers(child)
            or list(child.children())
        ):
            _stack_into(child, kids)
        else:
            raise Unstackable(f"no stacked version of {type(child).__name__}")
    for name, _ in list(target.named_parameters(recurse=False)):
        setattr(target, name, nn.Parameter(torch.stack([getattr(s, name).detach() for s in sources]).clone()))
    for name, _ in list(target.named_buffers(recurse=False)):
        target.register_buffer(name, torch.stack([getattr(s, name) for s in sources]).clone())


def _has_own_layers(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) and not list(module.children())


def member_state(stacked: nn.Module, p: int) -> dict[str, torch.Tensor]:
    """Member p's solo ``state_dict`` (the same keys as the solo module's)."""
    if isinstance(stacked, VmapStacked):
        return {k: v[p].clone() for k, v in stacked.inner.state_dict().items()}
    return {k: v[p].clone() for k, v in stacked.state_dict().items()}


@torch.no_grad()
def load_member_state(stacked: nn.Module, p: int, state: dict[str, torch.Tensor]) -> None:
    """Write a solo ``state_dict`` (keys as :func:`member_state`'s) into member p's slice of ``stacked``, in place."""
    target = stacked.inner if isinstance(stacked, VmapStacked) else stacked
    for k, v in target.state_dict().items():
        v[p].copy_(state[k])
