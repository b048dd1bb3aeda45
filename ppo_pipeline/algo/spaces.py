"""Where the env meets the network: observations in (numpy -> tensor), actions out (tensor -> numpy
the env takes). The collector, evaluation, play and the exported policy all cross here, with
the same two functions on tensors (:func:`network_input`, :func:`clip_action`).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from tensordict import TensorDict


def network_input(obs: torch.Tensor) -> torch.Tensor:
    """Observations as the networks take them: uint8 pixels stay uint8 (the CNN scales them to [0, 1]),
    anything else becomes float32."""
    if obs.dtype == torch.uint8:
        return obs
    return obs.to(torch.float32)


def clip_action(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A ``Box`` action clipped to the bounds (37 details, continuous #5: the env gets the clipped action,
    the batch keeps the raw sample)."""
    return action.clip(low, high)


def obs_tensor(obs: np.ndarray | dict[str, np.ndarray], device: torch.device) -> torch.Tensor | TensorDict:
    """numpy observations from the env [B, ...] -> :func:`network_input` on ``device``; a ``Dict`` space's dict of
    arrays -> a TensorDict [B] of its entries (the ``action_mask`` entry as bool)."""
    if isinstance(obs, dict):
        return TensorDict(
            {
                k: obs_tensor(v, device)
                if k != "action_mask"
                else torch.from_numpy(np.ascontiguousarray(v)).to(device, torch.bool)
                for k, v in obs.items()
            },
            batch_size=[len(next(iter(obs.values())))],
            device=device,
        )
    return network_input(torch.from_numpy(np.ascontiguousarray(obs))).to(device, non_blocking=True)


def env_action(action: torch.Tensor, space: gym.Space) -> np.ndarray:
    """The policy's action as the env takes it: numpy, :func:`clip_action` to a ``Box``'s bounds, in the space's
    dtype for MultiBinary (the Bernoulli draw is a float 0/1)."""
    if isinstance(space, gym.spaces.Box):
        action = clip_action(action.cpu(), torch.as_tensor(space.low), torch.as_tensor(space.high))
    out = action.cpu().numpy()
    return out.astype(space.dtype) if isinstance(space, gym.spaces.MultiBinary) else out


def stack_obs(observations: list[Any]) -> np.ndarray | dict[str, np.ndarray]:
    """Single-env observations (``info["final_obs"][i]``) stacked into a batch; a dict per ``Dict`` entry."""
    if isinstance(observations[0], dict):
        return {k: np.stack([o[k] for o in observations]) for k in observations[0]}
    return np.stack(observations)


def with_rows(
    obs: np.ndarray | dict[str, np.ndarray], index: np.ndarray, rows: np.ndarray | dict[str, np.ndarray]
) -> np.ndarray | dict[str, np.ndarray]:
    """A copy of the batch ``obs`` with its rows ``index`` replaced by ``rows`` (each entry of a ``Dict``'s dict)."""
    if isinstance(obs, dict):
        assert isinstance(rows, dict)  # the rows of a Dict space's batch: a dict of its entries too
        return {k: _with_rows(v, index, rows[k]) for k, v in obs.items()}
    assert isinstance(rows, np.ndarray)
    return _with_rows(obs, index, rows)


def _with_rows(obs: np.ndarray, index: np.ndarray, rows: np.ndarray) -> np.ndarray:
    out = obs.copy()
    out[index] = rows
    return out
