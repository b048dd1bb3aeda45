"""How well a policy does: deterministic evaluation of the agent, and the random-policy score.

Both step a vector env with a policy through :func:`rollout`, the one loop of this kind (the bench's
raw env rate uses it too). Evaluation envs have no life-loss episodes and no reward clipping (the
real game score), and observe through a *frozen* copy of the training normalization statistics.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .. import batch as keys
from ..config import Config
from ..envs import make_vector_env
from ..envs.seeds import env_seeds
from .collect import episode_stats
from .normalize import normalize_members
from .spaces import env_action, obs_tensor

Step = tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict]


class Policy:
    """numpy observations [B, ...] (a dict of arrays for ``Dict`` spaces) -> numpy actions for ``envs.step``;
    :meth:`ended` is told which envs' episodes ended in the last step (a recurrent policy resets there)."""

    def __call__(self, obs: Any) -> np.ndarray:
        raise NotImplementedError

    def ended(self, done: np.ndarray) -> None:
        """``done[i]``: env i's episode ended in the last step (its next observation starts a new one)."""


def rollout(envs: gym.vector.VectorEnv, policy: Policy, seeds: list[int]) -> Iterator[Step]:
    """Reset ``envs`` with ``seeds``, then step them with ``policy(obs)`` forever, yielding
    ``(obs, reward, terminated, truncated, info)`` per vector step (envs autoreset; the caller stops)."""
    obs, _ = envs.reset(seed=seeds)  # type: ignore[arg-type]  # stub: seed int; vector envs take a list
    while True:
        step = envs.step(policy(obs))
        obs = step[0]
        policy.ended(np.asarray(step[2]) | np.asarray(step[3]))
        yield step


class RandomPolicy(Policy):
    """Uniform random actions from the vector action space, seeded."""

    def __init__(self, envs: gym.vector.VectorEnv, seed: int):
        self.space = envs.action_space
        self.space.seed(seed)

    def __call__(self, obs: Any) -> np.ndarray:
        return self.space.sample()


class AgentPolicy(Policy):
    """The agent as evaluation plays it: raw observations (as the env gives them) through ``obs_norm`` (the run's
    statistics with ``update=False``: pass a frozen copy) -> the agent's action (``deterministic``: argmax of the
    logits or the Gaussian mean; otherwise a sample from torch's global generator) -> the env's action (Box:
    clipped to the bounds). With an LSTM it carries each env's state, reset where an episode ended. ``members``:
    a pack's agent over P members' envs, member-major (each member's rows through its own statistics)."""

    def __init__(
        self, agent: Any, obs_norm: Any, action_space: gym.Space, *, deterministic: bool = True, members: int = 1
    ):
        self.agent, self.obs_norm, self.action_space, self.deterministic = agent, obs_norm, action_space, deterministic
        self.members = members
        self.alive: np.ndarray | None = None  # [P] bool, set by evaluate for a pack
        self.device = next(agent.parameters()).device
        self.state: dict[str, torch.Tensor] | None = None
        self.starts: np.ndarray | None = None

    def __call__(self, obs: Any) -> np.ndarray:
        norm = obs if self.obs_norm is None else normalize_members(self.obs_norm, obs, self.members, update=False)
        x = obs_tensor(norm, self.device)
        if not getattr(self.agent, "recurrent", False):
            return self._idle_dead(
                env_action(self.agent.act(x, deterministic=self.deterministic)[keys.ACTION], self.action_space)
            )
        n = x.shape[0]
        if self.state is None or self.state[keys.STATE_H].shape[0] != n:
            self.state, self.starts = self.agent.initial_state(n, self.device), np.zeros(n, dtype=bool)
        init = torch.from_numpy(self.starts).to(self.device).view(-1, 1, 1)
        state = {k: torch.where(init, torch.zeros_like(v), v) for k, v in self.state.items()}
        out = self.agent.act(x, deterministic=self.deterministic, state=state)
        self.state = {k: out[f"next_{k}"] for k in state}
        return env_action(out[keys.ACTION], self.action_space)

    def _idle_dead(self, actions: np.ndarray) -> np.ndarray:
        """A stopped (diverged) member's envs take a neutral action, as in the collector: never its NaNs."""
        if self.alive is not None and not self.alive.all():
            actions[np.repeat(~self.alive, len(actions) // self.members)] = 0
        return actions

    def ended(self, done: np.ndarray) -> None:
        if getattr(self.agent, "recurrent", False):
            self.starts = np.asarray(done, dtype=bool).copy()


@torch.no_grad()
def evaluate(
    agent: Any, members: Config | Sequence[Config], obs_norm: Any, episodes: int, alive: np.ndarray | None = None
) -> list[list[float]]:
    """Deterministic policy (argmax / mean) of each member (one config: a solo run) on ``episodes`` fresh eval envs
    of its own seeds, one episode each, at most ``eval_max_steps`` steps, observed through a frozen copy of its
    statistics; each member's episodes' real game scores (all members' envs stepped as one batch). ``alive``: which
    members still train (a stopped one's envs idle; its scores mean nothing)."""
    members = [members] if isinstance(members, Config) else list(members)
    cfg, P = members[0], len(members)
    envs = make_vector_env(cfg, P * episodes, evaluation=True, pack=P > 1)
    try:
        frozen = obs_norm.frozen_copy() if obs_norm is not None else None
        policy = AgentPolicy(agent, frozen, envs.single_action_space, members=P)
        policy.alive = None if alive is None else np.asarray(alive, dtype=bool)
        seeds = [s for m in members for s in env_seeds(m.seed, episodes, evaluation=True)]
        returns = first_episode_returns(envs, policy, seeds, cfg.eval_max_steps)
    finally:
        envs.close()
    return [[float(r) for r in returns[p * episodes : (p + 1) * episodes]] for p in range(P)]


def first_episode_returns(envs: gym.vector.VectorEnv, policy: Policy, seeds: list[int], max_steps: int) -> np.ndarray:
    """Each env's first episode's summed reward (from ``reset(seeds)``, at most ``max_steps`` steps)."""
    returns = np.zeros(envs.num_envs)
    running = np.ones(envs.num_envs, dtype=bool)
    for _, (_, reward, term, trunc, _) in zip(range(max_steps), rollout(envs, policy, seeds)):
        returns += reward * running
        running &= ~(term | trunc)
        if not running.any():
            break
    return returns


def random_score(cfg: Config, seed: int, episodes: int = 100, max_steps: int = 5_000_000) -> float:
    """Mean raw return of the first ``episodes`` episodes of uniform random actions.

    Same env stack as training (``make_vector_env(cfg, cfg.num_envs)``, raw game score from the
    episode statistics) and the same env seeds (``env_seeds(seed, cfg.num_envs)``); the action space
    is seeded with ``seed``. Stops after ``max_steps`` env steps with the episodes finished by then.
    """
    envs = make_vector_env(cfg, cfg.num_envs)
    returns: list[float] = []
    try:
        steps = 0
        for _, _, _, _, info in rollout(envs, RandomPolicy(envs, seed), env_seeds(seed, cfg.num_envs)):
            steps += envs.num_envs
            returns.extend(r for _, r, _ in episode_stats(info))
            if len(returns) >= episodes or steps >= max_steps:
                break
    finally:
        envs.close()
    if not returns:
        raise RuntimeError(f"no episode of {cfg.env_id} finished within {max_steps} random steps")
    return float(np.mean(returns[:episodes]))
