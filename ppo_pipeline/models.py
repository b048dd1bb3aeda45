"""Actor and critic, built from the environment's spaces.

* Pixels (Atari): the Nature-DQN CNN trunk shared by a Categorical policy head and a value head
  (paper Sec. 6.2; 37 details: shared Nature CNN, scale to [0, 1]).
* Vectors: separate 64-64 tanh MLPs for policy and value (paper Sec. 6.1), a Gaussian with a
  state-independent learned log-std for ``Box`` actions, Categorical logits for ``Discrete``.
* Orthogonal init (37 details #2): gain sqrt(2) on hidden layers, 0.01 on the policy head, 1 on the
  value head, biases 0.

TensorDict contract (what :attr:`Agent.actor` and :attr:`Agent.critic` read and write):

* ``actor``  (torchrl ``ProbabilisticActor``): ``"observation"`` -> ``"logits"`` or
  ``"loc"``/``"scale"``, ``"action"``, ``"action_log_prob"``. (Shared trunk: also ``"hidden"``.)
* ``critic`` (torchrl ``ValueOperator``) for the loss: ``"observation"`` -> ``"state_value"`` [.., 1].
  With a shared trunk it reads ``"hidden"``, which the actor wrote into the same TensorDict moments
  before inside the PPO loss (torchrl computes the policy term first, then the critic term on the same
  TensorDict), so the CNN runs once per minibatch, as in the paper, not twice.

:meth:`Agent.act` is the collector's fast path: the same modules on plain tensors, no TensorDict per
step (a TensorDict actor call costs several times the bare network; ``python -m ppo_pipeline.bench``).
"""

from __future__ import annotations

import math

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn
from torchrl.modules import ProbabilisticActor, ValueOperator
from torchrl.modules.distributions import IndependentNormal

from . import workarounds
from .config import Config

workarounds.apply()
# torch.distributions checks its arguments' constraints on every construction (several per minibatch in
# the loss); a non-finite parameter is the NaN stop's business (Trainer.learn), so the checks are off.
torch.distributions.Distribution.set_default_validate_args(False)
HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def layer_init(layer: nn.Module, std: float = math.sqrt(2), bias: float = 0.0) -> nn.Module:
    """Orthogonal weights with gain ``std``, constant bias."""
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, bias)
    return layer


class NatureCNN(nn.Module):
    """Mnih et al. 2015: uint8 [C, 84, 84] -> /255 -> 32x8x8/4 -> 64x4x4/2 -> 64x3x3/1 -> 512, ReLU.

    The convolution weights are kept channels-last (NHWC): oneDNN's convolutions run about 20% faster
    that way on a CPU for the update's minibatches (``python -m ppo_pipeline.bench``); the math is the same.
    """

    def __init__(self, in_channels: int, out_features: int = 512):
        super().__init__()
        self.net = nn.Sequential(
            layer_init(nn.Conv2d(in_channels, 32, 8, stride=4)), nn.ReLU(),
            layer_init(nn.Conv2d(32, 64, 4, stride=2)), nn.ReLU(),
            layer_init(nn.Conv2d(64, 64, 3, stride=1)), nn.ReLU(),
            nn.Flatten(),
            layer_init(nn.Linear(64 * 7 * 7, out_features)), nn.ReLU(),
        ).to(memory_format=torch.channels_last)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs.float() / 255.0)


def mlp(in_features: int, hidden: list[int], out_features: int, out_std: float) -> nn.Sequential:
    """Tanh MLP with orthogonal init; the last layer's gain is ``out_std``."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [layer_init(nn.Linear(in_features, h)), nn.Tanh()]
        in_features = h
    layers.append(layer_init(nn.Linear(in_features, out_features), std=out_std))
    return nn.Sequential(*layers)


class GaussianHead(nn.Module):
    """obs -> (loc, scale) with a state-independent log-std parameter (37 details, continuous #2)."""

    def __init__(self, net: nn.Module, action_dim: int):
        super().__init__()
        self.net = net
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc = self.net(x)
        return loc, self.log_std.exp().expand_as(loc)


class Agent(nn.Module):
    """Policy and value function for one env, with torchrl operators for the loss."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, cfg: Config):
        super().__init__()
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        if not self.discrete and not isinstance(action_space, gym.spaces.Box):
            raise TypeError(f"unsupported action space {action_space}")
        n_out = int(action_space.n) if self.discrete else int(math.prod(action_space.shape))
        self.pixels = pixels = len(observation_space.shape) == 3
        self.shared = pixels or cfg.shared_trunk
        self.dist_keys = ("logits",) if self.discrete else ("loc", "scale")

        if self.shared:
            if pixels:
                self.trunk: nn.Module = NatureCNN(observation_space.shape[0])
                width = 512
            else:
                obs_dim = int(math.prod(observation_space.shape))
                self.trunk = nn.Sequential(*list(mlp(obs_dim, cfg.hidden_sizes[:-1], cfg.hidden_sizes[-1],
                                                     math.sqrt(2))), nn.Tanh())
                width = cfg.hidden_sizes[-1]
            policy_net: nn.Module = layer_init(nn.Linear(width, n_out), std=0.01)
            self.value_net: nn.Module = layer_init(nn.Linear(width, 1), std=1.0)
            policy_in = "hidden"
        else:
            obs_dim = int(math.prod(observation_space.shape))
            self.trunk = nn.Identity()
            policy_net = mlp(obs_dim, cfg.hidden_sizes, n_out, out_std=0.01)
            self.value_net = mlp(obs_dim, cfg.hidden_sizes, 1, out_std=1.0)
            policy_in = "observation"
        self.policy_net = policy_net if self.discrete else GaussianHead(policy_net, n_out)

        # --- torchrl operators (TensorDict in, TensorDict out) ------------------------------------------
        head = TensorDictModule(self.policy_net, in_keys=[policy_in], out_keys=list(self.dist_keys))
        modules = [TensorDictModule(self.trunk, ["observation"], ["hidden"]), head] if self.shared else [head]
        dist_cls = torch.distributions.Categorical if self.discrete else IndependentNormal
        self.actor = ProbabilisticActor(TensorDictSequential(*modules), in_keys=list(self.dist_keys),
                                        out_keys=["action"], distribution_class=dist_cls, return_log_prob=True)
        self.critic = ValueOperator(self.value_net, in_keys=["hidden" if self.shared else "observation"])

    # --- fast path for the collector and evaluation ---------------------------------------------------
    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        """obs [B, *obs] -> action [B(, A)], action_log_prob [B], state_value [B, 1], dist params.

        Same networks and the same distributions as :attr:`actor`, written out (a property test holds
        the log-prob equal to the ProbabilisticActor's): log pi(a|s) = log softmax(logits)[a], or
        sum_i [-(a_i - mu_i)^2 / (2 sigma_i^2) - log sigma_i - log(2 pi) / 2] with a = mu + sigma * z.
        """
        h = self.trunk(obs)
        x = h if self.shared else obs
        value = self.value_net(x)
        if self.discrete:   # Categorical(logits) without the distribution object: one softmax, one draw
            logits = self.policy_net(x)
            log_p = logits.log_softmax(-1)
            action = logits.argmax(-1) if deterministic else torch.multinomial(log_p.exp(), 1).squeeze(-1)
            return {"action": action, "action_log_prob": log_p.gather(-1, action.unsqueeze(-1)).squeeze(-1),
                    "state_value": value, "logits": logits}
        loc, scale = self.policy_net(x)   # independent Normal(loc, scale) per action dimension
        noise = torch.zeros_like(loc) if deterministic else torch.randn_like(loc)
        action = loc + scale * noise
        log_prob = (-0.5 * noise.square() - scale.log() - HALF_LOG_2PI).sum(-1)
        return {"action": action, "action_log_prob": log_prob, "state_value": value, "loc": loc, "scale": scale}

    @torch.no_grad()
    def state_value(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.trunk(obs)
        return self.value_net(h if self.shared else obs)

