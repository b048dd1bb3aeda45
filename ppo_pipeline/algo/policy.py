"""The agent: policy and value function, built from the env's spaces, and the torchrl operators over them.

One module maps an observation to the distribution's parameters (:attr:`Agent.trunk` then
:attr:`Agent.policy_head`); one place turns those into sample, log-prob, entropy and mode (the head's
distribution and ``mode``, :mod:`.distributions`). Everything that acts is built from these: the loss's
``ProbabilisticActor``, the collector and evaluation (:meth:`Agent.act`), play and export.

* Pixels (Atari): the Nature CNN trunk shared by the policy and value heads (paper Sec. 6.2).
* Vectors: separate 64-64 tanh MLPs for policy and value (paper Sec. 6.1), or one shared trunk.
* Init (37 details #2): policy output layer gain 0.01, value output gain 1 (:mod:`.networks`).

TensorDict contract (keys: :mod:`ppo_pipeline.batch`):

* ``actor`` (torchrl ``ProbabilisticActor``): ``observation`` -> the head's parameters (``logits`` or
  ``loc``/``scale``), ``action``, ``action_log_prob``. (Shared trunk: also ``hidden``.)
* ``critic`` (torchrl ``ValueOperator``): ``observation`` -> ``state_value`` [.., 1]. With a shared trunk it
  reads ``hidden``, which the actor wrote into the same TensorDict moments before inside the PPO loss
  (torchrl computes the policy term first, then the critic term on the same TensorDict), so the CNN runs
  once per minibatch, as in the paper, not twice.

:meth:`Agent.act` is the collector's path: the same modules on plain tensors, no TensorDict per step (a
TensorDict actor call costs several times the bare network; ``python -m ppo_pipeline.bench``).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.modules import ProbabilisticActor, ValueOperator

from .. import batch as keys
from .. import workarounds
from ..config import Config
from . import distributions
from .networks import NatureCNN, layer_init, mlp

workarounds.apply()
# torch.distributions checks its arguments' constraints on every construction (several per minibatch in
# the loss); a non-finite parameter is the NaN stop's business (the trainer), so the checks are off.
torch.distributions.Distribution.set_default_validate_args(False)


class Agent(nn.Module):
    """Policy and value function for one env, with torchrl operators for the loss."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, cfg: Config):
        super().__init__()
        n_out = distributions.head_outputs(action_space)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.pixels = pixels = len(observation_space.shape) == 3
        self.shared = pixels or cfg.shared_trunk
        obs_dim = int(math.prod(observation_space.shape))
        if self.shared:
            if pixels:
                self.trunk: nn.Module = NatureCNN(observation_space.shape[0])
                width = 512
            else:
                self.trunk = nn.Sequential(*mlp(obs_dim, cfg.hidden_sizes[:-1], cfg.hidden_sizes[-1], math.sqrt(2)),
                                           nn.Tanh())
                width = cfg.hidden_sizes[-1]
            policy_net: nn.Module = layer_init(nn.Linear(width, n_out), std=0.01)
            self.value_net: nn.Module = layer_init(nn.Linear(width, 1), std=1.0)
        else:
            self.trunk = nn.Identity()
            policy_net = mlp(obs_dim, cfg.hidden_sizes, n_out, out_std=0.01)
            self.value_net = mlp(obs_dim, cfg.hidden_sizes, 1, out_std=1.0)
        self.policy_head = distributions.make_head(action_space, policy_net)
        self.param_keys: tuple[str, ...] = self.policy_head.param_keys

        # --- torchrl operators (TensorDict in, TensorDict out) ------------------------------------------
        features = keys.HIDDEN if self.shared else keys.OBSERVATION
        head = TensorDictModule(self.policy_head, in_keys=[features], out_keys=list(self.param_keys))
        modules = [TensorDictModule(self.trunk, [keys.OBSERVATION], [keys.HIDDEN]), head] if self.shared else [head]
        self.actor = ProbabilisticActor(TensorDictSequential(*modules), in_keys=list(self.param_keys),
                                        out_keys=[keys.ACTION], distribution_class=self.policy_head.distribution,
                                        return_log_prob=True)
        self.critic = ValueOperator(self.value_net, in_keys=[features])

    # --- the collector's and evaluation's path ----------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """obs [B, *obs] -> ``action`` [B(, A)], ``action_log_prob`` [B], ``state_value`` [B, 1] and the
        distribution's parameters: a sample of pi(.|s) (``deterministic``: its mode) and log pi(a|s), from
        the head (:func:`.distributions.sample`), with V(s)."""
        h = self.trunk(obs)
        x = h if self.shared else obs
        params = self.policy_head(x)
        action, log_prob = distributions.sample(self.policy_head, params, deterministic)
        return {keys.ACTION: action, keys.ACTION_LOG_PROB: log_prob, keys.STATE_VALUE: self.value_net(x), **params}

    @torch.no_grad()
    def state_value(self, obs: torch.Tensor) -> torch.Tensor:
        """V(s) [B, 1] for observations [B, *obs]."""
        h = self.trunk(obs)
        return self.value_net(h if self.shared else obs)
