"""How well a policy does: deterministic evaluation of the agent, and the random-policy score.

Both step a vector env with a policy through :func:`rollout`, the one loop of this kind (the bench's
raw env rate uses it too). Evaluation envs have no life-loss episodes and no reward clipping (the
real game score), and observe through a *frozen* copy of the training normalization statistics.
"""

from __future__ import annotations

from typing import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch

from .. import batch as keys
from ..config import Config
from ..envs import make_vector_env
from ..envs.seeds import env_seeds
from .collect import episode_stats
from .normalize import ObsNormalizer
from .policy import Agent
from .spaces import env_action, obs_tensor

Policy = Callable[[np.ndarray], np.ndarray]
Step = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]


def rollout(envs: gym.vector.VectorEnv, policy: Policy, seeds: list[int]) -> Iterator[Step]:
    """Reset ``envs`` with ``seeds``, then step them with ``policy(obs)`` forever, yielding
    ``(obs, reward, terminated, truncated, info)`` per vector step (envs autoreset; the caller stops)."""
    obs, _ = envs.reset(seed=seeds)
    while True:
        step = envs.step(policy(obs))
        obs = step[0]
        yield step


def random_policy(envs: gym.vector.VectorEnv, seed: int) -> Policy:
    """Uniform random actions from the vector action space, seeded."""
    envs.action_space.seed(seed)
    return lambda obs: envs.action_space.sample()


def agent_policy(agent: Agent, obs_norm: ObsNormalizer | None, action_space: gym.Space, *,
                 deterministic: bool = True) -> Policy:
    """The agent as the evaluation plays it: numpy observations ``[B, *obs_shape]`` (raw, as the env gives
    them) -> numpy actions ``[B(, A)]`` ready for ``envs.step``.

    ``obs_norm`` (the run's statistics, or None) is applied with ``update=False``; pass a
    :meth:`~ppo_pipeline.algo.normalize.ObsNormalizer.frozen_copy`. Deterministic: argmax of the logits or the
    Gaussian mean; otherwise a sample from torch's global generator. Box actions are clipped to the bounds.
    """
    device = next(agent.parameters()).device

    def policy(obs: np.ndarray) -> np.ndarray:
        x = obs_norm(obs, update=False) if obs_norm is not None else obs
        action = agent.act(obs_tensor(x, device), deterministic=deterministic)[keys.ACTION]
        return env_action(action, action_space)

    return policy


@torch.no_grad()
def evaluate(agent: Agent, cfg: Config, obs_norm: ObsNormalizer | None, episodes: int) -> list[float]:
    """Deterministic policy (argmax / mean) on ``episodes`` fresh eval envs, one episode each, at most
    ``cfg.eval_max_steps`` steps; returns each episode's real game score."""
    envs = make_vector_env(cfg, episodes, evaluation=True)
    policy = agent_policy(agent, obs_norm.frozen_copy() if obs_norm is not None else None, envs.single_action_space)
    returns = np.zeros(episodes)
    running = np.ones(episodes, dtype=bool)
    try:
        steps = rollout(envs, policy, env_seeds(cfg.seed, episodes, evaluation=True))
        for _, (_, reward, term, trunc, _) in zip(range(cfg.eval_max_steps), steps):
            returns += reward * running
            running &= ~(term | trunc)
            if not running.any():
                break
    finally:
        envs.close()
    return [float(r) for r in returns]


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
        for _, _, _, _, info in rollout(envs, random_policy(envs, seed), env_seeds(seed, cfg.num_envs)):
            steps += envs.num_envs
            returns.extend(r for _, r, _ in episode_stats(info))
            if len(returns) >= episodes or steps >= max_steps:
                break
    finally:
        envs.close()
    if not returns:
        raise RuntimeError(f"no episode of {cfg.env_id} finished within {max_steps} random steps")
    return float(np.mean(returns[:episodes]))
