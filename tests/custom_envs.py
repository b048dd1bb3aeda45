"""A tiny env of a user's own, for the tests of ``--env-id package.module:EnvClass`` and ``--env-module``.

``LineWalk``: a walker on the integer line starts at 0; action 1 steps right, 0 steps left; reaching +5
gives reward 1 and ends the episode (terminated); 50 steps end it too (truncated). Observation: the
position / 5 as float32 [1]. Importing this module also registers it as ``LineWalk-v0``.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class LineWalk(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = None, goal: int = 5, max_steps: int = 50):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.render_mode, self.goal, self.max_steps = render_mode, goal, max_steps
        self.pos = self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.pos / self.goal], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.pos = self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.pos += 1 if int(action) == 1 else -1
        self.t += 1
        terminated = self.pos >= self.goal
        return self._obs(), float(terminated), terminated, self.t >= self.max_steps and not terminated, {}

    def render(self) -> np.ndarray:
        frame = np.zeros((16, 32, 3), dtype=np.uint8)
        frame[:, int(np.clip(self.pos + 16, 0, 31))] = 255
        return frame


if "LineWalk-v0" not in gym.registry:     # imported again by a test or a worker: register once
    gym.register("LineWalk-v0", entry_point=LineWalk)
