"""Small example envs for the variant policies (docs/variants.md), each learnable in seconds to minutes.

Train one from the repository's root with ``--env-id examples.envs:Name``, e.g.
``python recipes/classic_control.py --env-id examples.envs:CartPoleNoVel --policy lstm``; your own env
class works the same way (``--env-id package.module:EnvClass``).

* ``CartPoleNoVel``: CartPole-v1 with the two velocities removed (observation [x, theta]): partially
  observed; sb3-contrib's test task for recurrent policies. An MLP cannot tell which way the pole moves.
* ``MaskedChain`` / ``MaskedChainMethod``: a chain of ``length`` cells; at each cell a seeded subset of the 6
  actions is allowed, one of them steps forward (+1 at the end), the other allowed ones step back to the
  start; a masked action is illegal: the env counts it (``illegal``) and ends the episode with -10.
  ``MaskedChain`` observes ``Dict(observation: one-hot cell, action_mask: MultiBinary(6))`` (PettingZoo's and
  torchrl's convention), ``MaskedChainMethod`` observes the one-hot cell and has ``action_masks()`` (sb3-contrib's).
* ``DictCartPole``: CartPole-v1 observed as ``Dict(cart: [x, x_dot], pole: [theta, theta_dot])``.
* ``DictImage``: ``Dict(image: uint8 [40, 40, 1], goal: Box(2))``, a 10-step task solvable from ``goal``
  alone (the image shows the same goal as a bright square): a CNN entry beside a vector entry.
* ``TargetCode`` (MultiDiscrete [3, 3]) / ``TargetBits`` (MultiBinary(4)): observe a target code (one-hot /
  bits), act it out part by part; reward = the fraction of parts right; 8 steps per episode.
* ``RepeatPrevious``: observe a random symbol (one-hot of ``n``) each step, act out the one shown ``delay`` steps
  before; +1 when right. A memory task in its plainest form (POPGym's RepeatPrevious): a policy without memory
  scores 1/n per step, a recurrent one can score every step.

(The test suite trains on these same classes: ``tests/test_variants.py``, ``tests/test_pack.py``; the former ids
``tests.variant_envs:Name`` that committed results name resolve to them, ``tests/test_examples.py``.)
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class CartPoleNoVel(gym.ObservationWrapper):
    def __init__(self, render_mode: str | None = None):
        super().__init__(gym.make("CartPole-v1", render_mode=render_mode))
        high = np.array([4.8, 0.42], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def observation(self, obs: np.ndarray) -> np.ndarray:
        return obs[[0, 2]].astype(np.float32)


class MaskedChain(gym.Env):
    N_ACTIONS = 6

    def __init__(self, length: int = 6, max_steps: int = 30, render_mode: str | None = None):
        self.length, self.max_steps = length, max_steps
        rng = np.random.default_rng(1234)  # the same chain for every env and seed
        self.masks = np.zeros((length, self.N_ACTIONS), dtype=np.int8)
        self.forward = np.zeros(length, dtype=np.int64)
        for cell in range(length):
            allowed = rng.choice(self.N_ACTIONS, size=3, replace=False)
            self.masks[cell, allowed] = 1
            self.forward[cell] = allowed[0]
        self.action_space = gym.spaces.Discrete(self.N_ACTIONS)
        self.observation_space = gym.spaces.Dict(
            {
                "observation": gym.spaces.Box(0.0, 1.0, (length,), np.float32),
                "action_mask": gym.spaces.MultiBinary(self.N_ACTIONS),
            }
        )
        self.cell = self.t = 0
        self.illegal = 0

    def _cell(self) -> np.ndarray:
        one_hot = np.zeros(self.length, dtype=np.float32)
        one_hot[self.cell] = 1.0
        return one_hot

    def _obs(self):
        return {"observation": self._cell(), "action_mask": self.masks[self.cell].copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.cell = self.t = 0
        return self._obs(), {}

    def step(self, action):
        a = int(action)
        self.t += 1
        if not self.masks[self.cell, a]:
            self.illegal += 1
            return self._obs(), -10.0, True, False, {}
        self.cell = self.cell + 1 if a == self.forward[self.cell] else 0
        done = self.cell == self.length - 1
        return self._obs(), float(done), done, self.t >= self.max_steps and not done, {}


class MaskedChainMethod(MaskedChain):
    def __init__(self, length: int = 6, max_steps: int = 30, render_mode: str | None = None):
        super().__init__(length, max_steps)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (length,), np.float32)

    def _obs(self):
        return self._cell()

    def action_masks(self) -> np.ndarray:
        return self.masks[self.cell].astype(bool)


class DictCartPole(gym.ObservationWrapper):
    def __init__(self, render_mode: str | None = None):
        super().__init__(gym.make("CartPole-v1", render_mode=render_mode))
        self.observation_space = gym.spaces.Dict(
            {
                "cart": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
                "pole": gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
            }
        )

    def observation(self, obs: np.ndarray) -> dict:
        return {"cart": obs[:2].astype(np.float32), "pole": obs[2:].astype(np.float32)}


class DictImage(gym.Env):
    def __init__(self, render_mode: str | None = None):
        self.observation_space = gym.spaces.Dict(
            {
                "image": gym.spaces.Box(0, 255, (40, 40, 1), np.uint8),
                "goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
            }
        )
        self.action_space = gym.spaces.Discrete(4)
        self.goal = np.zeros(2, dtype=np.float32)
        self.t = 0

    def _obs(self) -> dict:
        image = np.zeros((40, 40, 1), dtype=np.uint8)
        r, c = ((self.goal + 1) * 17).astype(int)
        image[r : r + 6, c : c + 6] = 255
        return {"image": image, "goal": self.goal.copy()}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.goal = self.np_random.choice([-1.0, 1.0], size=2).astype(np.float32)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        quadrant = int(self.goal[0] > 0) * 2 + int(self.goal[1] > 0)
        self.t += 1
        reward = 1.0 if int(action) == quadrant else 0.0
        self.goal = self.np_random.choice([-1.0, 1.0], size=2).astype(np.float32)
        return self._obs(), reward, False, self.t >= 10, {}


class TargetCode(gym.Env):
    def __init__(self, nvec: tuple[int, ...] = (3, 3), steps: int = 8, render_mode: str | None = None):
        self.nvec, self.steps = np.array(nvec), steps
        self.action_space = gym.spaces.MultiDiscrete(self.nvec)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (int(self.nvec.sum()),), np.float32)
        self.target = np.zeros(len(nvec), dtype=np.int64)
        self.t = 0

    def _draw(self) -> None:
        self.target = np.array([self.np_random.integers(n) for n in self.nvec])

    def _obs(self) -> np.ndarray:
        out = np.zeros(int(self.nvec.sum()), dtype=np.float32)
        out[np.cumsum([0, *self.nvec[:-1]]) + self.target] = 1.0
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._draw()
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        reward = float(np.mean(np.asarray(action) == self.target))
        self.t += 1
        self._draw()
        return self._obs(), reward, False, self.t >= self.steps, {}


class TargetBits(gym.Env):
    def __init__(self, n: int = 4, steps: int = 8, render_mode: str | None = None):
        self.n, self.steps = n, steps
        self.action_space = gym.spaces.MultiBinary(n)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), np.float32)
        self.target = np.zeros(n, dtype=np.int8)
        self.t = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.target = self.np_random.integers(0, 2, self.n).astype(np.int8)
        self.t = 0
        return self.target.astype(np.float32), {}

    def step(self, action):
        reward = float(np.mean(np.asarray(action) == self.target))
        self.t += 1
        self.target = self.np_random.integers(0, 2, self.n).astype(np.int8)
        return self.target.astype(np.float32), reward, False, self.t >= self.steps, {}


class RepeatPrevious(gym.Env):
    """Observation: one-hot of this step's symbol (of ``n``); action: Discrete(n); reward 1 when the action is the
    symbol observed ``delay`` steps before (0 in the first ``delay`` steps, which have nothing to recall).
    ``steps`` per episode: the best return is ``steps - delay``, a memoryless policy's expected one
    ``(steps - delay) / n``."""

    def __init__(self, n: int = 2, delay: int = 1, steps: int = 16, render_mode: str | None = None):
        self.n, self.delay, self.steps = n, delay, steps
        self.action_space = gym.spaces.Discrete(n)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), np.float32)
        self.shown: list[int] = []

    def _show(self) -> np.ndarray:
        self.shown.append(int(self.np_random.integers(self.n)))
        return np.eye(self.n, dtype=np.float32)[self.shown[-1]]

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.shown = []
        return self._show(), {}

    def step(self, action):
        t = len(self.shown) - 1  # the step whose symbol the agent has just seen
        reward = float(t >= self.delay and int(action) == self.shown[t - self.delay])
        return self._show(), reward, False, len(self.shown) > self.steps, {}
