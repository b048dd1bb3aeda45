"""Action distributions: the one definition of how the policy's outputs become actions.

For each action space a *head*: the module that maps features (and, for masked actions, the mask) to the
distribution's parameters (``forward``: a dict keyed by ``param_keys``), ``draw`` (a sample, from a given
random generator: a pack member draws from its own), ``mode`` (the deterministic action of evaluation,
play and export), and the distribution class that gives log-probabilities, entropies and KL divergences
(torch's and torchrl's own classes where they exist, which torchrl's ``ProbabilisticActor`` and the PPO
losses build from the same keys). Nothing else in the package writes out a log-probability, an entropy or
an argmax: the collector, the loss, evaluation and export all go through a head (``tests/test_policy.py``
holds them equal on random observations).

========================  ===========================  ==============================  =====================================  ==================
action space              head                         parameters (``param_keys``)     distribution                           mode
========================  ===========================  ==============================  =====================================  ==================
``Discrete(n)``           :class:`CategoricalHead`     ``logits`` [.., n]              ``torch.distributions.Categorical``    argmax
``Discrete(n)``, masked   :class:`MaskedCategoricalHead`  ``logits``, ``mask`` [.., n]  torchrl ``MaskedCategorical``          argmax over allowed
``Box`` (A)               :class:`GaussianHead`        ``loc``, ``scale`` [.., A]      torchrl ``IndependentNormal``          ``loc``
``MultiDiscrete(nvec)``   :class:`MultiCategoricalHead`  ``logits`` [.., sum(nvec)]    :class:`MultiCategorical`              argmax per part
``MultiBinary(n)``        :class:`BernoulliHead`       ``logits`` [.., n]              :class:`IndependentBernoulli`          ``logits > 0``
========================  ===========================  ==============================  =====================================  ==================

The Gaussian's standard deviation is state-independent (37 details, continuous #2): ``scale = exp(log_std)``
broadcast to ``loc``, ``log_std`` a learned parameter (initialized at ``--log-std-init``) or a schedule's value
(``--log-std anneal``, Table 4's LinearAnneal(-0.7, -1.6)). A masked action (mask 0) has probability 0: it is never drawn,
never the mode, and log-probabilities and entropy are over the allowed actions. MultiDiscrete and
MultiBinary are independent parts: log-probability and entropy summed over the parts. (torchrl's composite
distributions split an action into TensorDict entries; the env takes one integer vector, so these two small
classes keep it one tensor.) ``export`` traces ``forward`` and ``mode`` with ``torch.export``.

No argument checks: every distribution a head builds (here, in torchrl's ``ProbabilisticActor`` and in its losses)
is of a class above with ``validate_args`` off (``_validate_args = False`` on the class; the torch and torchrl
ones are subclasses that change nothing else: :class:`UncheckedCategorical`, :class:`UncheckedMaskedCategorical`,
:class:`UncheckedIndependentNormal`), and so are the distributions inside them. torch checks every constraint on
each construction otherwise (several per minibatch in the loss), and a non-finite parameter is the NaN stop's
business (the trainer). ``torch.distributions.Distribution``'s own default, what a user's distributions get, is
left as it is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import torch
from torch import nn
from torch.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Independent,
    constraints,
    kl_divergence,
    register_kl,
)

from .. import workarounds

with workarounds.distribution_default_kept():  # torchrl's import turns it off process-wide (workaround 6)
    from torchrl.modules.distributions import IndependentNormal, MaskedCategorical

Params = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------------------------------
# torch's and torchrl's distributions without argument checks (module docstring)
# ------------------------------------------------------------------------------------------------------
class UncheckedCategorical(Categorical):
    """``torch.distributions.Categorical`` (logits or probs), ``validate_args`` off unless asked."""

    _validate_args = False


class UncheckedMaskedCategorical(MaskedCategorical):
    """torchrl's ``MaskedCategorical`` (logits, mask), ``validate_args`` off (it takes no ``validate_args``)."""

    _validate_args = False


class UncheckedIndependentNormal(IndependentNormal):
    """torchrl's ``IndependentNormal`` (loc, scale [.., A]), ``validate_args`` off, its inner ``Normal``'s too."""

    _validate_args = False

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, **kwargs):
        kwargs.setdefault("validate_args", False)  # torchrl hands its kwargs to the inner Normal
        super().__init__(loc, scale, **kwargs)


# ------------------------------------------------------------------------------------------------------
# Distributions that torch and torchrl do not have
# ------------------------------------------------------------------------------------------------------
class MultiCategorical(Distribution):
    """Independent categoricals of sizes ``nvec`` over one logits vector [.., sum(nvec)]; actions [.., K]."""

    arg_constraints = {"logits": constraints.real_vector}
    has_enumerate_support = False
    _validate_args = False

    def __init__(self, logits: torch.Tensor, nvec: Sequence[int] = (), validate_args: bool | None = None):
        self.logits, self.nvec = logits, [int(n) for n in nvec]
        self.parts = [Categorical(logits=x, validate_args=False) for x in logits.split(self.nvec, dim=-1)]
        super().__init__(batch_shape=logits.shape[:-1], event_shape=torch.Size([len(self.nvec)]), validate_args=False)

    def sample(self, sample_shape: torch.Size | list[int] | tuple[int, ...] = torch.Size()) -> torch.Tensor:
        return torch.stack([d.sample(sample_shape) for d in self.parts], -1)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        return sum(d.log_prob(value[..., i]) for i, d in enumerate(self.parts))

    def entropy(self) -> torch.Tensor:
        return sum(d.entropy() for d in self.parts)

    @property
    def mode(self) -> torch.Tensor:
        return torch.stack([x.argmax(-1) for x in self.logits.split(self.nvec, dim=-1)], -1)


class IndependentBernoulli(Independent):
    """Independent Bernoullis over logits [.., n]; actions [.., n] in {0, 1} (float, as Bernoulli's)."""

    _validate_args = False

    def __init__(self, logits: torch.Tensor, validate_args: bool | None = None):
        super().__init__(Bernoulli(logits=logits, validate_args=False), 1, validate_args=False)

    @property
    def mode(self) -> torch.Tensor:
        return (self.base_dist.logits > 0).to(self.base_dist.logits.dtype)


@register_kl(MultiCategorical, MultiCategorical)
def _kl_multi_categorical(p: MultiCategorical, q: MultiCategorical) -> torch.Tensor:
    total = sum(kl_divergence(a, b) for a, b in zip(p.parts, q.parts))
    assert isinstance(total, torch.Tensor)  # not the 0 of an empty sum: nvec has at least one part
    return total


@register_kl(UncheckedMaskedCategorical, UncheckedMaskedCategorical)
def _kl_masked_categorical(p: UncheckedMaskedCategorical, q: UncheckedMaskedCategorical) -> torch.Tensor:
    """KL[p || q] of two masked categoricals: torch's categorical KL, the sum over the actions p allows of
    p (log p - log q) (inf where q forbids one of them), with ``torch.where`` in place of its two in-place
    overwrites of the -inf - -inf entries, whose gradient ``torch.compile`` gets wrong (workaround 10)."""
    allowed = p.probs > 0
    log_ratio = torch.where(allowed, p.logits, 0.0) - torch.where(allowed, q.logits, 0.0)
    t = torch.where(allowed, p.probs * log_ratio, 0.0)
    return torch.where(allowed & (q.probs == 0), torch.inf, t).sum(-1)


# ------------------------------------------------------------------------------------------------------
# Heads
# ------------------------------------------------------------------------------------------------------
class LogitsHead(nn.Module):
    """features -> ``{"logits": net(x)}``: what the Categorical, MultiDiscrete and MultiBinary heads share."""

    param_keys: tuple[str, ...] = ("logits",)
    distribution_kwargs: dict = {}

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        return {"logits": self.net(x)}

    def log_prob(self, params: Params, action: torch.Tensor) -> torch.Tensor:
        """log pi(action) of the distribution class over ``params`` (:func:`build`)."""
        return build(cast(Head, self), params).log_prob(action)  # a subclass: every LogitsHead in use is a Head


class CategoricalHead(LogitsHead):
    """features -> ``{"logits": [.., n]}``; Categorical(logits); mode = argmax."""

    distribution = UncheckedCategorical

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["logits"].argmax(-1)

    def log_prob(self, params: Params, action: torch.Tensor) -> torch.Tensor:
        """log pi(a) = (logits - logsumexp(logits))[a]: ``Categorical.log_prob``'s arithmetic, op for op, without
        building the object (the collector's eager step; ``tests/test_policy.py`` holds it bit-equal)."""
        logits = params["logits"]
        log_pmf = logits - logits.logsumexp(-1, keepdim=True)
        return log_pmf.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)

    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """a ~ Categorical(softmax(logits)), from ``generator`` (None: torch's global one)."""
        logits = params["logits"]
        probs = logits.softmax(-1).reshape(-1, logits.shape[-1])
        return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


class MaskedCategoricalHead(CategoricalHead):
    """features, mask -> ``{"logits", "mask"}``; torchrl's MaskedCategorical; mode = argmax over the allowed."""

    param_keys = ("logits", "mask")
    distribution = UncheckedMaskedCategorical

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.net(x)
        if mask is None:
            mask = torch.ones_like(logits, dtype=torch.bool)
        return {"logits": logits, "mask": mask.to(torch.bool)}

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["logits"].masked_fill(~params["mask"], float("-inf")).argmax(-1)

    def log_prob(self, params: Params, action: torch.Tensor) -> torch.Tensor:
        return build(self, params).log_prob(action)  # over the allowed actions (torchrl's MaskedCategorical)

    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        """a ~ softmax over the allowed actions (a masked action has probability exactly 0)."""
        logits = params["logits"].masked_fill(~params["mask"], float("-inf"))
        return super().draw({"logits": logits}, generator)


class GaussianHead(nn.Module):
    """features -> ``{"loc": net(x), "scale": exp(log_std)}`` [.., A]; independent Normal; mode = loc."""

    param_keys = ("loc", "scale")
    distribution = UncheckedIndependentNormal
    distribution_kwargs: dict = {}

    def __init__(self, net: nn.Module, action_dim: int, log_std_init: float = 0.0, learned: bool = True):
        super().__init__()
        self.net = net
        log_std = torch.full((action_dim,), float(log_std_init))
        if learned:
            self.log_std = nn.Parameter(log_std)
        else:  # a schedule's value (Table 4's LinearAnneal), written by the run before each update
            self.register_buffer("log_std", log_std)

    def set_log_std(self, value: float) -> None:
        """Write a scheduled log stdev (the head was built with ``learned=False``)."""
        with torch.no_grad():
            self.log_std.fill_(value)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        loc = self.net(x)
        std = self.log_std.exp()  # [A], or [P, A] stacked for a pack: broadcast over the batch dims between
        std = std.reshape(list(std.shape[:-1]) + [1] * (loc.dim() - std.dim()) + [std.shape[-1]])
        return {"loc": loc, "scale": std.expand_as(loc)}

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return params["loc"]

    def log_prob(self, params: Params, action: torch.Tensor) -> torch.Tensor:
        """log pi(a) = sum_i -(a_i - loc_i)^2 / (2 scale_i^2) - log scale_i - log sqrt(2 pi): ``Normal.log_prob``'s
        arithmetic summed over the action (``Independent``), op for op, without building the objects (~35 us a
        step of the eager collector; ``tests/test_policy.py`` holds it bit-equal)."""
        loc, scale = params["loc"], params["scale"]
        return (-((action - loc) ** 2) / (2 * scale**2) - scale.log() - math.log(math.sqrt(2 * math.pi))).sum(-1)

    def draw(
        self, params: Params, generator: torch.Generator | None = None, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        """a = loc + scale * z, z ~ N(0, I) from ``generator`` (None: torch's global one), or z = ``noise``
        drawn ahead (a pack draws each member's z for a whole rollout at once)."""
        loc = params["loc"]
        if noise is None:
            noise = torch.randn(loc.shape, generator=generator, dtype=loc.dtype, device=loc.device)
        return loc + params["scale"] * noise


class MultiCategoricalHead(LogitsHead):
    """features -> ``{"logits": [.., sum(nvec)]}``; independent categoricals; mode = argmax per part."""

    distribution = MultiCategorical

    def __init__(self, net: nn.Module, nvec: Sequence[int]):
        super().__init__(net)
        self.nvec: list[int] = [int(n) for n in nvec]
        self.distribution_kwargs = {"nvec": self.nvec}

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.stack([x.argmax(-1) for x in params["logits"].split(self.nvec, dim=-1)], -1)

    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        parts = []
        for x in params["logits"].split(self.nvec, dim=-1):
            probs = x.softmax(-1).reshape(-1, x.shape[-1])
            parts.append(torch.multinomial(probs, 1, generator=generator).reshape(x.shape[:-1]))
        return torch.stack(parts, -1)


class BernoulliHead(LogitsHead):
    """features -> ``{"logits": [.., n]}``; independent Bernoullis; mode = logits > 0."""

    distribution = IndependentBernoulli

    def mode(self, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return (params["logits"] > 0).to(params["logits"].dtype)

    def draw(self, params: Params, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = params["logits"].sigmoid()
        return torch.bernoulli(probs, generator=generator)


Head = CategoricalHead | MaskedCategoricalHead | GaussianHead | MultiCategoricalHead | BernoulliHead


def head_outputs(action_space: gym.Space) -> int:
    """Width of the last layer of the policy net for ``action_space``; TypeError for a space no head takes."""
    if isinstance(action_space, gym.spaces.Discrete):
        return int(action_space.n)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return int(sum(int(n) for n in action_space.nvec.reshape(-1)))
    if isinstance(action_space, (gym.spaces.Box, gym.spaces.MultiBinary)):
        return int(torch.Size(action_space.shape).numel())
    raise TypeError(f"unsupported action space {action_space}")


def make_head(
    action_space: gym.Space,
    net: nn.Module,
    *,
    masked: bool = False,
    log_std_init: float = 0.0,
    log_std_learned: bool = True,
) -> Head:
    """The head for ``action_space`` on top of ``net`` (whose output width is :func:`head_outputs`);
    ``masked``: a Discrete space whose observations carry an ``action_mask``; ``log_std_*``: a Box space's
    Gaussian (its initial log stdev, learned or scheduled)."""
    if isinstance(action_space, gym.spaces.Discrete):
        return MaskedCategoricalHead(net) if masked else CategoricalHead(net)
    if isinstance(action_space, gym.spaces.MultiDiscrete):
        return MultiCategoricalHead(net, action_space.nvec.reshape(-1).tolist())
    if isinstance(action_space, gym.spaces.MultiBinary):
        return BernoulliHead(net)
    return GaussianHead(net, head_outputs(action_space), log_std_init, log_std_learned)


def build(head: Head, params: Params) -> Distribution:
    """The head's distribution over ``params`` (what torchrl's ProbabilisticActor builds too)."""
    tensors: dict[str, Any] = {k: params[k] for k in head.param_keys}  # each distribution takes its own names
    return head.distribution(**tensors, **head.distribution_kwargs)


def sample(
    head: Head,
    params: Params,
    deterministic: bool = False,
    generator: torch.Generator | None = None,
    noise: torch.Tensor | None = None,
    rows: Any = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(action, log pi(action)) from ``params``: the head's draw (from ``generator``, or a Gaussian's from ``noise``
    drawn ahead), or its mode. ``rows`` (a :class:`ppo_pipeline.algo.ranks.RowShare`: one rank's envs of a run over
    several processes): draw as the one-process run does for all its envs, keep these rows (a draw of row i
    depends on the generator's state and row i alone: ``tests/test_ranks.py`` holds it)."""
    if deterministic:
        action = head.mode(params)
    elif noise is not None:
        assert isinstance(head, GaussianHead)  # noise drawn ahead is a Gaussian's (gaussian_noise)
        action = head.draw(params, noise=noise)
    else:
        action = draw(head, params, generator, rows)
    return action, head.log_prob(params, action)


def draw(head: Head, params: Params, generator: torch.Generator | None = None, rows: Any = None) -> torch.Tensor:
    """The head's draw from ``generator``; with ``rows`` (:func:`sample`'s) the one-process run's draw for all envs,
    these rows kept."""
    if rows is None:
        return head.draw(params, generator)
    return rows.take(head.draw({k: rows.pad(v) for k, v in params.items()}, generator))


def gaussian_noise(
    head: GaussianHead, steps: int, envs: int, generators: Sequence[torch.Generator | None]
) -> torch.Tensor:
    """N(0, I) draws [steps, len(generators) x envs, A]: member p's [steps, envs, A] from ``generators[p]`` at once,
    members side by side (member-major envs, as the collector holds them)."""
    width, dev = head.log_std.shape[-1], head.log_std.device
    draws = [torch.randn((steps, envs, width), generator=g, device=dev) for g in generators]
    return draws[0] if len(draws) == 1 else torch.cat(draws, 1)
