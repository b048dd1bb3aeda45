"""Action distributions: the one definition of how the policy's outputs become actions.

For each action space a *head*: the module that maps features to the distribution's parameters
(``forward``: a dict keyed by ``param_keys``), ``draw`` (a sample, from a given random generator: a pack
member draws from its own), ``mode`` (the deterministic action of evaluation, play and export), and the
distribution class that gives log-probabilities, entropies and KL divergences (torch's and torchrl's own
classes, which torchrl's ``ProbabilisticActor`` and the PPO losses build from the same keys). Nothing else in the package writes out a log-probability, an entropy or an argmax: the
collector, the loss, evaluation and export all go through a head (``tests/test_policy.py`` holds them
equal on random observations).

===============  ==================  =====================================  ===========================  ======
action space     head                parameters (``param_keys``)            distribution                 mode
===============  ==================  =====================================  ===========================  ======
``Discrete(n)``  :class:`CategoricalHead`  ``logits`` [.., n]                 ``torch.distributions.Categorical``  argmax
``Box`` (A)      :class:`GaussianHead`     ``loc``, ``scale`` [.., A]         torchrl ``IndependentNormal``        ``loc``
===============  ==================  =====================================  ===========================  ======

The Gaussian's standard deviation is a state-independent learned parameter (37 details, continuous #2):
``scale = exp(log_std)`` broadcast to ``loc``. Heads are TorchScript-able (``export`` scripts ``mode``).
"""

from __future__ import annotations

from typing import Dict

import gymnasium as gym
import torch
from torch import nn
from torchrl.modules.distributions import IndependentNormal

Params = Dict[str, torch.Tensor]


class CategoricalHead(nn.Module):
    """features -> ``{"logits": [.., n]}``; Categorical(logits); mode = argmax."""

    param_keys = ("logits",)
    distribution = torch.distributions.Categorical

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"logits": self.net(x)}

    @torch.jit.export
    def mode(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        return params["logits"].argmax(-1)

    @torch.jit.ignore
    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """a ~ Categorical(softmax(logits)), from ``generator`` (None: torch's global one)."""
        logits = params["logits"]
        probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


class GaussianHead(nn.Module):
    """features -> ``{"loc": net(x), "scale": exp(log_std)}`` [.., A]; independent Normal; mode = loc."""

    param_keys = ("loc", "scale")
    distribution = IndependentNormal

    def __init__(self, net: nn.Module, action_dim: int):
        super().__init__()
        self.net = net
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        loc = self.net(x)
        std = self.log_std.exp()      # [A], or [P, A] stacked for a pack: broadcast over the batch dims between
        std = std.reshape(list(std.shape[:-1]) + [1] * (loc.dim() - std.dim()) + [std.shape[-1]])
        return {"loc": loc, "scale": std.expand_as(loc)}

    @torch.jit.export
    def mode(self, params: Dict[str, torch.Tensor]) -> torch.Tensor:
        return params["loc"]

    @torch.jit.ignore
    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """a = loc + scale * z, z ~ N(0, I) from ``generator`` (None: torch's global one)."""
        loc = params["loc"]
        noise = torch.randn(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
        return loc + params["scale"] * noise


Head = CategoricalHead | GaussianHead


def head_outputs(action_space: gym.Space) -> int:
    """Width of the last layer of the policy net for ``action_space``; TypeError for a space no head takes."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.Box):
        return int(torch.Size(action_space.shape).numel())
    raise TypeError(f"unsupported action space {action_space}")


def make_head(action_space: gym.Space, net: nn.Module) -> Head:
    """The head for ``action_space`` on top of ``net`` (whose output width is :func:`head_outputs`)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return CategoricalHead(net)
    return GaussianHead(net, head_outputs(action_space))


def build(head: Head, params: Params) -> torch.distributions.Distribution:
    """The head's distribution over ``params`` (what torchrl's ProbabilisticActor builds too)."""
    return head.distribution(**{k: params[k] for k in head.param_keys})


def sample(head: Head, params: Params, deterministic: bool = False,
           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(action, log pi(action)) from ``params``: the head's draw (from ``generator``), or its mode."""
    action = head.mode(params) if deterministic else head.draw(params, generator)
    return action, build(head, params).log_prob(action)
