"""Where the env meets the network: observations in (numpy -> tensor), actions out (tensor -> numpy
the env takes). The collector, evaluation, play and the exported TorchScript policy all cross here, with
the same two functions on tensors (:func:`network_input`, :func:`clip_action`; TorchScript-able).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch


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


def obs_tensor(obs: np.ndarray, device: torch.device) -> torch.Tensor:
    """numpy observations from the env -> :func:`network_input` on ``device``."""
    return network_input(torch.from_numpy(np.ascontiguousarray(obs))).to(device, non_blocking=True)


def env_action(action: torch.Tensor, space: gym.Space) -> np.ndarray:
    """The policy's action as the env takes it: numpy, :func:`clip_action` to a ``Box``'s bounds."""
    if isinstance(space, gym.spaces.Box):
        action = clip_action(action.cpu(), torch.as_tensor(space.low), torch.as_tensor(space.high))
    return action.cpu().numpy()
