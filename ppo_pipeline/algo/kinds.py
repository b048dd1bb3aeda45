"""The spaces the agent takes, decided without torch: what a run's start checks (``--dry-run``, a refused env) and
what the networks read (an image, the action mask).

=================  ===================================================================================
kind               spaces
=================  ===================================================================================
actions            Discrete, Box, MultiDiscrete, MultiBinary (:data:`ACTION_SPACES`)
observations       a Box, or a Dict of Box entries; an image is a uint8 Box of 3 dims (:func:`is_image`)
                   at least :data:`MIN_IMAGE_SIDE` pixels a side; a Dict's ``action_mask`` entry
                   (:data:`MASK_KEY`) is MultiBinary(n) beside Discrete(n) actions
=================  ===================================================================================
"""

from __future__ import annotations

from typing import TypeGuard

import gymnasium as gym
import numpy as np

from ..errors import ConfigError

MIN_IMAGE_SIDE = 36  # the Nature CNN's three convolutions need at least 36 x 36 pixels
MASK_KEY = "action_mask"


def is_image(space: gym.Space) -> TypeGuard[gym.spaces.Box]:
    """A ``Box`` of uint8 pixels with 3 dims ([C, H, W] or [H, W, C])."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3 and space.dtype == np.uint8


def channels_last(shape: tuple[int, ...]) -> bool:
    """[H, W, C] (gymnasium's image layout: a last dim of at most 4 channels) rather than [C, H, W]."""
    return shape[-1] <= 4 < shape[0]


ACTION_SPACES = (gym.spaces.Discrete, gym.spaces.Box, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)


def check_spaces(observation_space: gym.Space, action_space: gym.Space, env_id: str = "the env") -> None:
    """Raise :class:`ConfigError` (one line) for spaces the agent cannot handle, naming the space."""
    if not isinstance(action_space, ACTION_SPACES):
        raise ConfigError(
            f"{env_id}: action space {action_space} is not supported; the agent acts on Discrete, "
            f"Box, MultiDiscrete and MultiBinary spaces"
        )
    entries = (
        observation_space.spaces.items()
        if isinstance(observation_space, gym.spaces.Dict)
        else [("", observation_space)]
    )
    if not isinstance(observation_space, (gym.spaces.Dict, gym.spaces.Box)):
        raise ConfigError(
            f"{env_id}: observation space {observation_space} is not supported; the agent observes "
            f"a Box or a Dict of Box entries"
        )
    for key, space in entries:
        where = f"observation entry {key!r}" if key else "observation space"
        if key == MASK_KEY:
            if (
                not isinstance(space, (gym.spaces.MultiBinary, gym.spaces.Box))
                or not isinstance(action_space, gym.spaces.Discrete)
                or tuple(space.shape) != (int(action_space.n),)
            ):
                raise ConfigError(
                    f"{env_id}: {where} {space} must be MultiBinary({getattr(action_space, 'n', 'n')}) "
                    f"beside a Discrete action space (1 = allowed)"
                )
            continue
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(
                f"{env_id}: {where} {space} is not supported; Dict entries must be Box spaces "
                f"(images uint8 [H, W, C] or [C, H, W], or vectors)"
            )
        if is_image(space) and min(space.shape[:2] if channels_last(space.shape) else space.shape[1:]) < MIN_IMAGE_SIDE:
            raise ConfigError(
                f"{env_id}: {where} {space}: images must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                f"(the Nature CNN's three convolutions)"
            )
