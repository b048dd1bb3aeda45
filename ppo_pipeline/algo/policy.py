"""The agent: policy and value function, built from the env's spaces, and the torchrl operators over them.

One module maps an observation to the distribution's parameters (:attr:`Agent.trunk`, the optional LSTM,
then :attr:`Agent.policy_head`); one place turns those into sample, log-prob, entropy and mode (the head's
distribution, ``draw`` and ``mode``, :mod:`.distributions`). Everything that acts is built from these: the
loss's ``ProbabilisticActor``, the collector and evaluation (:meth:`Agent.act`), play and export.

===========================  ==========================================  ====================================
observations                 trunk (shared by both heads, run once)      heads (policy / value)
===========================  ==========================================  ====================================
vector ``Box``               none: each head reads the observation        64-64 tanh MLPs (paper Sec. 6.1)
vector, ``shared_trunk``     64-64 tanh MLP                               linear
pixels (Atari)               Nature CNN (paper Sec. 6.2)                  linear
``Dict`` of ``Box`` entries  a Nature CNN per image, vectors flattened,   64-64 tanh MLPs (linear with
                             concatenated (SB3's CombinedExtractor)       ``shared_trunk``: + a tanh MLP)
``--policy lstm``            the above, then an LSTM (torchrl LSTMModule)  linear
===========================  ==========================================  ====================================

Init (37 details #2): policy output layer gain 0.01, value output gain 1 (:mod:`.networks`). A ``Dict``
observation with an ``action_mask`` entry (1 = allowed) masks a ``Discrete`` policy
(:class:`~.distributions.MaskedCategoricalHead`).

TensorDict contract (keys: :mod:`ppo_pipeline.batch`):

* ``actor`` (torchrl ``ProbabilisticActor``): ``observation`` (a tensor, or a TensorDict of the ``Dict``'s
  entries) -> the head's parameters, ``action``, ``action_log_prob``. (With a trunk: also ``hidden``; with an
  LSTM it reads ``is_init`` and ``recurrent_state_h``/``_c`` and runs whole sequences [B, T].)
* ``critic`` (torchrl ``ValueOperator``): -> ``state_value`` [.., 1]. With a trunk it reads ``hidden``,
  which the actor wrote into the same TensorDict moments before inside the PPO loss (torchrl computes the
  policy term first, then the critic term on the same TensorDict), so the trunk runs once per minibatch.

:meth:`Agent.act` is the collector's path: the same modules on plain tensors, no TensorDict per step (a
TensorDict actor call costs several times the bare network; ``python -m ppo_pipeline.bench``); the LSTM
steps one time step with the state the collector carries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import torch
from tensordict.nn import TensorDictModule, TensorDictSequential
from torch import nn

from .. import batch as keys
from .. import workarounds
from ..config import Config
from . import distributions
from .kinds import MASK_KEY, check_spaces, is_image
from .networks import CombinedEncoder, NatureCNN, layer_init, mlp

with workarounds.distribution_default_kept():  # torchrl's import turns it off process-wide (workaround 6)
    from torchrl.modules import LSTMModule, ProbabilisticActor, ValueOperator


class Agent(nn.Module):
    """Policy and value function for one env, with torchrl operators for the loss."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space, cfg: Config):
        super().__init__()
        check_spaces(observation_space, action_space)
        n_out = distributions.head_outputs(action_space)
        self.discrete = isinstance(action_space, gym.spaces.Discrete)
        self.gaussian = isinstance(action_space, gym.spaces.Box)
        self.dict_obs = isinstance(observation_space, gym.spaces.Dict)
        dict_space = observation_space if isinstance(observation_space, gym.spaces.Dict) else None
        self.masked = dict_space is not None and MASK_KEY in dict_space.spaces
        self.pixels = is_image(observation_space) or (
            dict_space is not None and any(is_image(s) for s in dict_space.spaces.values())
        )
        self.recurrent = cfg.policy == "lstm"
        deep_trunk = cfg.shared_trunk or self.recurrent
        if dict_space is not None:
            encoder = CombinedEncoder(dict_space)
            width = encoder.out_features
            self.trunk: nn.Module = encoder
            if deep_trunk:
                self.trunk = nn.Sequential(
                    encoder, *mlp(width, cfg.hidden_sizes[:-1], cfg.hidden_sizes[-1], math.sqrt(2)), nn.Tanh()
                )
                width = cfg.hidden_sizes[-1]
        elif is_image(observation_space):
            self.trunk, width = NatureCNN(observation_space.shape[0]), 512
        else:
            assert isinstance(observation_space, gym.spaces.Box)  # check_spaces: a Dict or a Box
            width = int(math.prod(observation_space.shape))
            self.trunk = nn.Identity()
            if deep_trunk:
                self.trunk = nn.Sequential(
                    *mlp(width, cfg.hidden_sizes[:-1], cfg.hidden_sizes[-1], math.sqrt(2)), nn.Tanh()
                )
                width = cfg.hidden_sizes[-1]
        self.shared = not isinstance(self.trunk, nn.Identity) or self.recurrent
        if self.recurrent:  # torchrl's LSTMModule: sequences [B, T] in the loss, one step at a time in act()
            self.lstm = LSTMModule(
                input_size=width,
                hidden_size=cfg.lstm_hidden,
                in_key=keys.FEATURES,
                out_key=keys.HIDDEN,
                default_recurrent_mode=True,
            )
            width = cfg.lstm_hidden
        linear_heads = deep_trunk or (self.pixels and not self.dict_obs)
        hidden = [] if linear_heads else list(cfg.hidden_sizes)
        self.value_net: nn.Module = (
            layer_init(nn.Linear(width, 1), std=1.0) if not hidden else mlp(width, hidden, 1, out_std=1.0)
        )
        policy_net = layer_init(nn.Linear(width, n_out), std=0.01) if not hidden else mlp(width, hidden, n_out, 0.01)
        self.policy_head = distributions.make_head(
            action_space,
            policy_net,
            masked=self.masked,
            log_std_init=cfg.log_std_init,
            log_std_learned=cfg.log_std == "learned",
        )
        self.param_keys: tuple[str, ...] = self.policy_head.param_keys
        self._build_operators()

    def _build_operators(self) -> None:
        """torchrl operators (TensorDict in, TensorDict out) over the same modules."""
        features = keys.HIDDEN if self.shared else keys.OBSERVATION
        modules: list[nn.Module] = []
        if self.recurrent:
            modules += [TensorDictModule(self.trunk, [keys.OBSERVATION], [keys.FEATURES]), self.lstm]
        elif self.shared:
            modules.append(TensorDictModule(self.trunk, [keys.OBSERVATION], [keys.HIDDEN]))
        head_in = [features] + ([(keys.OBSERVATION, MASK_KEY)] if self.masked else [])
        modules.append(TensorDictModule(self.policy_head, in_keys=head_in, out_keys=list(self.param_keys)))
        self.actor = ProbabilisticActor(
            TensorDictSequential(*modules),
            in_keys=list(self.param_keys),
            out_keys=[keys.ACTION],
            distribution_class=self.policy_head.distribution,
            distribution_kwargs=self.policy_head.distribution_kwargs,
            return_log_prob=True,
        )
        self.critic = ValueOperator(self.value_net, in_keys=[features])

    # --- the collector's and evaluation's path ----------------------------------------------------------
    def initial_state(self, batch: int, device: Any = "cpu") -> dict[str, torch.Tensor] | None:
        """The LSTM's state at an episode start, [batch, layers, H] each (torchrl's layout); None without one."""
        if not self.recurrent:
            return None
        lstm = self.lstm.lstm
        zeros = torch.zeros(batch, lstm.num_layers, lstm.hidden_size, device=device)
        return {keys.STATE_H: zeros, keys.STATE_C: zeros.clone()}

    def _features(self, obs: Any, state: dict[str, torch.Tensor] | None) -> tuple[torch.Tensor, Any]:
        """What the heads read, and the LSTM's state after this step (None without one)."""
        if not self.shared:
            return obs, None
        x = self.trunk(obs)
        if not self.recurrent:
            return x, None
        assert state is not None  # a recurrent policy is given its state (initial_state at an episode start)
        h, c = (state[k].transpose(0, 1).contiguous() for k in (keys.STATE_H, keys.STATE_C))
        out, (h, c) = self.lstm.lstm(x.unsqueeze(1), (h, c))
        return out.squeeze(1), {keys.STATE_H: h.transpose(0, 1), keys.STATE_C: c.transpose(0, 1)}

    @torch.no_grad()
    def act(
        self,
        obs: Any,
        deterministic: bool = False,
        state: dict[str, torch.Tensor] | None = None,
        generators: Sequence[torch.Generator | None] | None = None,
        noise: torch.Tensor | None = None,
        rows: Any = None,
    ) -> dict[str, torch.Tensor]:
        """obs [B, *obs] (a TensorDict for ``Dict`` spaces) -> ``action`` [B(, A)], ``action_log_prob`` [B],
        ``state_value`` [B, 1] and the distribution's parameters: a sample of pi(.|s) drawn with ``generators[0]``
        (the run's own generator; None: torch's global one) or, for a Gaussian, from ``noise`` [B, A] drawn ahead
        (:meth:`rollout_noise`); ``deterministic``: its mode. log pi(a|s) and V(s) beside it. With an LSTM,
        ``state`` is its state before the step (zeros where an episode starts); the output adds the state after it
        under ``("next", ...)`` keys: ``next_recurrent_state_h``/``_c``. ``rows``: this rank's envs of a run over
        several processes (:func:`ppo_pipeline.algo.distributions.sample`)."""
        x, after = self._features(obs, state)
        params = self.policy_head(x, obs[MASK_KEY] if self.masked else None)
        action, log_prob = distributions.sample(
            self.policy_head, params, deterministic, generators[0] if generators else None, noise, rows
        )
        out = {keys.ACTION: action, keys.ACTION_LOG_PROB: log_prob, keys.STATE_VALUE: self.value_net(x), **params}
        if after is not None:
            out.update({f"next_{k}": v for k, v in after.items()})
        return out

    def sample(self, obs: Any, noise: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`act` of a Gaussian policy from this step's ``noise``: tensors only (the collector compiles it)."""
        return self.act(obs, noise=noise)

    def rollout_noise(self, steps: int, envs: int, generators: Sequence[torch.Generator | None]) -> torch.Tensor | None:
        """A Gaussian policy's N(0, I) draws for a whole rollout of ``steps`` over ``envs`` envs, from its generator
        at once (one call per rollout, not per step): [T, E, A]; None for other heads (they draw per step) and an
        LSTM (its collector step carries the state)."""
        if not isinstance(self.policy_head, distributions.GaussianHead) or self.recurrent:
            return None
        return distributions.gaussian_noise(self.policy_head, steps, envs, generators)

    @torch.no_grad()
    def state_value(self, obs: Any, state: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """V(s) [B, 1] for observations [B, *obs] (with an LSTM: from ``state``, the state before s)."""
        x, _ = self._features(obs, state)
        return self.value_net(x)
