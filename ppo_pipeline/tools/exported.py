"""The exported policy modules (plain torch, built from the agent's own pieces) and the programs made of them.

Observations in as the env gives them (raw, its dtype) -> the action the env takes, deterministically:
observations through :func:`~ppo_pipeline.algo.normalize.standardize` with the run's frozen statistics
(float64, as the collector computes it; per vector entry of a ``Dict``) or
:func:`~ppo_pipeline.algo.spaces.network_input`; then the agent's ``trunk`` (and LSTM), ``policy_head``
(with the ``action_mask`` entry for masked actions) and the head's ``mode``
(:mod:`ppo_pipeline.algo.distributions`); ``Box`` actions through :func:`~ppo_pipeline.algo.spaces.clip_action`.

=================================  =============================================================================
module                             call
=================================  =============================================================================
:class:`ExportedPolicy`            ``policy(obs)`` -> action; ``obs`` a tensor [B, *obs]
:class:`ExportedDictPolicy`        ``policy(obs)`` -> action; ``obs`` a dict of tensors, the env's ``Dict`` keys
:class:`ExportedRecurrentPolicy`   ``policy(obs, h, c)`` -> (action, h, c); ``h``, ``c`` [layers, B, H] (torch's
                                   LSTM layout), zeros at every episode start
:class:`ExportedRecurrentDictPolicy`  the same with a dict ``obs``
=================================  =============================================================================

:func:`program` traces one of them with ``torch.export`` (the batch dimension dynamic; the observation dtype
is the env's, fixed in the program) and :func:`onnx_program` converts that program with
``torch.onnx.export(..., dynamo=True)`` (inputs named by :func:`input_names`, outputs by :func:`output_names`).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..algo.networks import in_memory_format
from ..algo.normalize import DictObsNormalizer, standardize
from ..algo.spaces import clip_action, network_input

if TYPE_CHECKING:  # annotations only (the policy module loads torchrl)
    from ..algo.policy import Agent


class Standardize(nn.Module):
    """The run's frozen observation statistics: ``standardize`` in float64, returned as float32."""

    def __init__(self, stats: dict[str, Any], eps: float, clip: float):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(stats["mean"]), dtype=torch.float64).clone())
        self.register_buffer("var", torch.as_tensor(np.asarray(stats["var"]), dtype=torch.float64).clone())
        self.eps, self.clip = float(eps), float(clip)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return standardize(obs.to(torch.float64), self.mean, self.var, self.eps, self.clip).to(torch.float32)


class ExportedModule(nn.Module):
    """What every exported policy module holds and does (copies of the weights, CPU); each kind below has its own
    ``forward`` (see the module docstring)."""

    low: torch.Tensor  # buffers, registered in __init__
    high: torch.Tensor

    def __init__(self, agent: Agent, obs_norm: Any, action_space: gym.Space):
        super().__init__()
        # the standard (contiguous) layout: the Nature CNN keeps its weights channels-last for training speed, and
        # torch.export.save warns "No complete tensor found in the group" for such weights
        agent = in_memory_format(copy.deepcopy(agent).cpu().eval(), torch.contiguous_format)
        self.trunk, self.policy_head = agent.trunk, agent.policy_head
        self.lstm = agent.lstm.lstm if agent.recurrent else nn.LSTM(1, 1)
        self.shared = bool(agent.shared)
        if isinstance(obs_norm, DictObsNormalizer):
            self.norms = nn.ModuleDict(
                {k: Standardize(n.state_dict(), n.eps, n.clip) for k, n in obs_norm.norms.items()}
            )
        else:
            self.norms = nn.ModuleDict(
                {} if obs_norm is None else {"obs": Standardize(obs_norm.state_dict(), obs_norm.eps, obs_norm.clip)}
            )
        self.box = isinstance(action_space, gym.spaces.Box)
        low, high = (
            (action_space.low, action_space.high)
            if isinstance(action_space, gym.spaces.Box)
            else (np.zeros(1), np.zeros(1))
        )
        self.register_buffer("low", torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1)).clone())
        self.register_buffer("high", torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1)).clone())
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def _prepare(self, obs: torch.Tensor) -> torch.Tensor:
        x = network_input(obs)
        for norm in self.norms.values():
            x = norm(obs)
        return x

    def _prepare_dict(self, obs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for k, v in obs.items():
            out[k] = v.to(torch.bool) if k == "action_mask" else network_input(v)  # MASK_KEY
        for k, norm in self.norms.items():
            out[k] = norm(obs[k])
        return out

    def _act(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        action = self.policy_head.mode(self.policy_head(x, mask))
        if self.box:
            action = clip_action(action, self.low, self.high)
        return action

    def _step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out, (h, c) = self.lstm(x.unsqueeze(1), (h, c))
        return out.squeeze(1), h, c

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(h, c)`` at an episode start: zeros [layers, batch, H] each."""
        zeros = torch.zeros(self.lstm.num_layers, batch, self.lstm.hidden_size)
        return zeros, zeros.clone()


class ExportedPolicy(ExportedModule):
    """obs [B, *obs_shape] -> the env's action."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = self._prepare(obs)
        return self._act(self.trunk(x) if self.shared else x, None)


class ExportedDictPolicy(ExportedModule):
    """obs (a dict of tensors [B, ...], the env's ``Dict`` entries) -> the env's action."""

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        x = self._prepare_dict(obs)
        return self._act(self.trunk(x), x.get("action_mask"))


class ExportedRecurrentPolicy(ExportedModule):
    """(obs [B, *obs], h, c) -> (the env's action, h, c): one step of the LSTM policy."""

    def forward(
        self, obs: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x, h, c = self._step(self.trunk(self._prepare(obs)), h, c)
        return self._act(x, None), h, c


class ExportedRecurrentDictPolicy(ExportedModule):
    """(obs dict, h, c) -> (the env's action, h, c)."""

    def forward(
        self, obs: dict[str, torch.Tensor], h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self._prepare_dict(obs)
        x, h, c = self._step(self.trunk(p), h, c)
        return self._act(x, p.get("action_mask")), h, c


def exported_module(agent: Agent, obs_norm: Any, action_space: gym.Space) -> ExportedModule:
    """The exported module for ``agent``'s kind (Box or Dict observations, feed-forward or LSTM)."""
    cls: dict[tuple[bool, bool], type[ExportedModule]] = {
        (False, False): ExportedPolicy,
        (True, False): ExportedDictPolicy,
        (False, True): ExportedRecurrentPolicy,
        (True, True): ExportedRecurrentDictPolicy,
    }
    return cls[(bool(agent.dict_obs), bool(agent.recurrent))](agent, obs_norm, action_space)


# ------------------------------------------------------------------------------------------------------
# Programs: torch.export, then ONNX
# ------------------------------------------------------------------------------------------------------
EXAMPLE_BATCH = 2  # the example inputs' batch size (not 0 or 1: torch.export would specialize on those)


def example_inputs(module: ExportedModule, obs_space: gym.Space, batch: int = EXAMPLE_BATCH) -> tuple:
    """Zeros shaped as ``module``'s inputs for ``batch`` observations of ``obs_space``, in the env's dtypes:
    ``(obs,)`` or ``(obs, h, c)``; ``obs`` a tensor [batch, *shape] or a dict of them (a ``Dict`` space)."""

    def zeros(space: gym.Space) -> torch.Tensor:
        assert space.shape is not None  # a Box, or a Dict's Box or MultiBinary entry (check_spaces)
        return torch.from_numpy(np.zeros((batch, *space.shape), dtype=space.dtype))

    obs: Any = (
        {k: zeros(s) for k, s in obs_space.spaces.items()}
        if isinstance(obs_space, gym.spaces.Dict)
        else zeros(obs_space)
    )
    if isinstance(module, (ExportedRecurrentPolicy, ExportedRecurrentDictPolicy)):
        return (obs, *module.initial_state(batch))
    return (obs,)


def dynamic_shapes(inputs: tuple) -> tuple:
    """``torch.export``'s ``dynamic_shapes`` for :func:`example_inputs`: the batch dimension of every input
    (dim 0 of the observations, dim 1 of the LSTM state) is one dynamic size, ``batch``."""
    batch = torch.export.Dim("batch", min=1)
    obs = {k: {0: batch} for k in inputs[0]} if isinstance(inputs[0], dict) else {0: batch}
    return (obs, *({1: batch} for _ in inputs[1:]))


def program(module: ExportedModule, obs_space: gym.Space) -> torch.export.ExportedProgram:
    """``torch.export.export`` of ``module`` on :func:`example_inputs`, any batch size (``Dim("batch")``)."""
    from ..workarounds import export_notices_dropped

    inputs = example_inputs(module, obs_space)
    with export_notices_dropped():
        return torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes(inputs))


def input_names(obs_space: gym.Space, recurrent: bool) -> list[str]:
    """The ONNX inputs: ``obs`` (a ``Dict`` space: one per key, the key, in the space's order), then ``h``, ``c``."""
    obs = list(obs_space.spaces) if isinstance(obs_space, gym.spaces.Dict) else ["obs"]
    return obs + (["h", "c"] if recurrent else [])


def output_names(recurrent: bool) -> list[str]:
    """The ONNX outputs: ``action``, then ``h_next``, ``c_next`` (the LSTM state after the step)."""
    return ["action"] + (["h_next", "c_next"] if recurrent else [])


def onnx_program(exported: torch.export.ExportedProgram, obs_space: gym.Space, recurrent: bool) -> Any:
    """``torch.onnx.export(exported, dynamo=True)`` (a ``torch.onnx.ONNXProgram``; needs onnxscript), inputs and
    outputs named by :func:`input_names` / :func:`output_names`, the batch dimension ``batch``."""
    from ..workarounds import export_notices_dropped

    with export_notices_dropped():
        onnx = torch.onnx.export(
            exported,
            dynamo=True,
            verbose=False,
            input_names=input_names(obs_space, recurrent),
            output_names=output_names(recurrent),
        )
    assert onnx is not None  # dynamo=True: an ONNXProgram
    shape = onnx.model.graph.inputs[0].shape
    assert shape is not None
    batch = shape[0]
    assert not isinstance(batch, int)  # the dynamic batch dimension: a symbol
    onnx.rename_axes({batch: "batch"})  # the program's symbol (s12, ...) -> batch
    return onnx
