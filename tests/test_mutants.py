"""Tests that can fail: every invariant's property check, run against a deliberately broken object, must fail.

Each mutant differs from the pipeline's object in one place (a loss subclass overriding one torchrl hook, a
wrapper around the real GAE, a sampler drawing with replacement, ...). The very same ``check_*`` function the
property test runs is driven by hypothesis over the very same strategy; the mutant test passes only if hypothesis
finds an example on which the check raises ``AssertionError``. A property that passes on a mutant is a defect.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import test_properties_gae as G
import test_properties_loss as L
import test_properties_sampler as S
import torch
import torchrl.objectives.ppo as torchrl_ppo
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict
from torchrl.objectives import PPOLoss
from torchrl.objectives.utils import distance_loss

from ppo_pipeline.algo.advantages import make_gae
from ppo_pipeline.algo.objectives import KLController, make_loss
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.sampler import MinibatchSampler
from ppo_pipeline.config import Config

MUTANT_EXAMPLES = 200     # a cap: the search stops at the first failing example


def assert_catches(check: Callable[[Any], None], strategy: st.SearchStrategy) -> None:
    """Hypothesis must find an example of ``strategy`` on which ``check`` fails (no shrinking: speed)."""

    @settings(max_examples=MUTANT_EXAMPLES, phases=[Phase.generate], database=None, derandomize=True,
              deadline=None, report_multiple_bugs=False, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def search(example: Any) -> None:
        check(example)

    with pytest.raises(AssertionError) as caught:
        search()
    print(f"caught: {str(caught.value).splitlines()[0][:150]}")


def mutate(**overrides: Any) -> L.LossFactory:
    """A loss factory: the pipeline's make_loss, then the loss's class swapped for a subclass with ``overrides``."""

    def factory(cfg: Config, agent: Agent) -> PPOLoss:
        loss = make_loss(cfg, agent)
        loss.__class__ = type(f"Mutant{type(loss).__name__}", (type(loss),), overrides)
        return loss

    return factory


# ----------------------------------------------------------------------------------------------------
# Loss mutants
# ----------------------------------------------------------------------------------------------------
def _max_instead_of_min(self: PPOLoss, tensordict: TensorDict) -> TensorDict:
    """Eq. 7 with max: max(rA, clip(r)A) = -min(r(-A), clip(r)(-A)), through torchrl's own forward."""
    td = tensordict.clone(False)
    td["advantage"] = -td["advantage"]
    out = type(self).__mro__[1].forward(self, td)
    out["loss_objective"] = -out["loss_objective"]
    return out


def _swapped_bounds(self: PPOLoss) -> tuple[torch.Tensor, torch.Tensor]:
    return self.clip_epsilon.log1p(), (-self.clip_epsilon).log1p()


def _detached_ratio(self: PPOLoss, tensordict: TensorDict, adv_shape: torch.Size):
    lw, dist, kl, is_w = type(self).__mro__[1]._log_weight(self, tensordict, adv_shape)
    return lw.detach(), dist, kl, is_w


def _inverted_ratio(self: PPOLoss, tensordict: TensorDict, adv_shape: torch.Size):
    lw, dist, kl, is_w = type(self).__mro__[1]._log_weight(self, tensordict, adv_shape)
    return -lw, dist, kl, is_w


def _sign_flipped(self: PPOLoss, tensordict: TensorDict) -> TensorDict:
    out = type(self).__mro__[1].forward(self, tensordict)
    out["loss_objective"] = -out["loss_objective"]
    return out


def _sampled_kl(self: PPOLoss, tensordict: TensorDict) -> TensorDict:
    """The KL reported as the one-sample log-ratio log pi_old(a) - log pi(a) (can be negative)."""
    out = type(self).__mro__[1].forward(self, tensordict)
    lw, *_ = self._log_weight(tensordict.clone(False), adv_shape=tensordict.shape)
    out["kl"] = -lw.detach()
    return out


def _std_only_normalization(self: PPOLoss, advantage: torch.Tensor, tensordict: TensorDict, *, update_norm: bool):
    return advantage / advantage.std().clamp_min(1e-6) if advantage.numel() > 1 else advantage


def _entropy_sign(self: PPOLoss, entropy: torch.Tensor) -> torch.Tensor:
    return self.entropy_coeff * entropy


def smooth_l1_critic(cfg: Config, agent: Agent) -> PPOLoss:
    """torchrl's default critic loss instead of Eq. 9's squared error."""
    loss = make_loss(cfg, agent)
    loss.loss_critic_type = "smooth_l1"
    return loss


def test_pessimism_catches_max_instead_of_min() -> None:
    assert_catches(lambda c: L.check_pessimism(c, mutate(forward=_max_instead_of_min)), L.loss_cases())


def test_pessimism_catches_swapped_clip_bounds() -> None:
    assert_catches(lambda c: L.check_pessimism(c, mutate(_clip_bounds=property(_swapped_bounds))), L.loss_cases())


def test_theta_old_catches_detached_ratio() -> None:
    assert_catches(lambda c: L.check_theta_old(c, mutate(_log_weight=_detached_ratio)),
                   L.loss_cases(theta_old=True))


def test_theta_old_catches_sign_flip() -> None:
    assert_catches(lambda c: L.check_theta_old(c, mutate(forward=_sign_flipped)),
                   L.loss_cases(theta_old=True, normalize=False))


def test_clipped_gradients_catch_swapped_clip_bounds() -> None:
    assert_catches(lambda c: L.check_clipped_gradients(c, mutate(_clip_bounds=property(_swapped_bounds))),
                   L.loss_cases(normalize=False))


def test_clipped_gradients_catch_max_instead_of_min() -> None:
    assert_catches(lambda c: L.check_clipped_gradients(c, mutate(forward=_max_instead_of_min)),
                   L.loss_cases(normalize=False))


def test_eps_monotone_catches_max_instead_of_min() -> None:
    eps = st.tuples(st.floats(1e-3, 0.99), st.floats(1e-3, 0.99))
    assert_catches(lambda x: L.check_eps_monotone(x[0], x[1], mutate(forward=_max_instead_of_min)),
                   st.tuples(L.loss_cases(), eps))


@pytest.mark.parametrize("objective", ["clip", "kl_fixed", "none"])
def test_reference_values_catch_sign_flip(objective: str) -> None:
    assert_catches(lambda c: L.check_reference_values(c, mutate(forward=_sign_flipped)),
                   L.loss_cases(objective=objective))


def test_reference_values_catch_smooth_l1_critic() -> None:
    assert_catches(lambda c: L.check_reference_values(c, smooth_l1_critic), L.loss_cases())


def test_reference_values_catch_max_instead_of_min() -> None:
    assert_catches(lambda c: L.check_reference_values(c, mutate(forward=_max_instead_of_min)),
                   L.loss_cases(objective="clip"))


def test_kl_catches_sampled_log_ratio() -> None:
    assert_catches(lambda c: L.check_kl(c, False, mutate(forward=_sampled_kl)),
                   L.loss_cases(objective="kl_adaptive"))


class InvertedKLController(KLController):
    """The adaptive-beta rule upside down: raise beta when the KL is small, lower it when large."""

    def next_beta(self, beta: float, d: float) -> float:
        if d < self.kl_target / 1.5:
            return beta * 2.0
        if d > self.kl_target * 1.5:
            return beta / 2.0
        return beta


def test_beta_rule_catches_inverted_rule() -> None:
    assert_catches(lambda x: L.check_beta_rule(InvertedKLController(x[0]), x[1], x[2]), L.beta_rule_inputs())


def test_normalization_catches_std_only() -> None:
    mutant = mutate(_maybe_normalize_advantage=_std_only_normalization)
    assert_catches(lambda nc: L.check_minibatch_standardized(nc[0], nc[1], mutant), L.normalization_cases())


def test_affine_invariance_catches_std_only() -> None:
    mutant = mutate(_maybe_normalize_advantage=_std_only_normalization)
    strategy = st.tuples(L.loss_cases(normalize=True, min_n=2), st.floats(1e-2, 1e2), st.floats(-100, 100))
    assert_catches(lambda x: L.check_affine_invariance(x[0], x[1], x[2], mutant), strategy)


def test_entropy_bonus_catches_sign_flip() -> None:
    strategy = st.tuples(L.loss_cases(), st.tuples(st.floats(-3, 2), st.floats(-3, 2)), st.floats(0.0, 1.0))
    assert_catches(lambda x: L.check_entropy_bonus(x[0], x[1], x[2], mutate(_weighted_loss_entropy=_entropy_sign)),
                   strategy)


def test_value_clipping_catches_optimistic_min(monkeypatch: pytest.MonkeyPatch) -> None:
    """torchrl's _clip_value_loss with min instead of max (the optimistic choice)."""

    def optimistic(old, value, clip, target, loss_value, loss_type):
        clipped = old + (value - old).clamp(-clip, clip)
        return torch.minimum(loss_value, distance_loss(target, clipped, loss_function=loss_type)), None

    monkeypatch.setattr(torchrl_ppo, "_clip_value_loss", optimistic)
    assert_catches(lambda x: L.check_value_clipping(x[0], x[1]), st.tuples(L.loss_cases(), st.floats(1e-3, 10.0)))


@pytest.mark.parametrize("policy", sorted(L.POLICIES))
def test_ratio_catches_inverted_ratio(policy: str) -> None:
    assert_catches(lambda c: L.check_ratio(c, mutate(_log_weight=_inverted_ratio)),
                   L.loss_cases(policy=policy, random_params=True))


class WrongFastPathAgent(Agent):
    """Agent.act with a wrong log-prob: the Gaussian ignores its std, the Categorical normalises over the batch."""

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = False) -> dict[str, torch.Tensor]:
        out = super().act(obs, deterministic)
        if self.discrete:
            out["action_log_prob"] = torch.log_softmax(out["logits"], 0).gather(-1, out["action"][:, None])[:, 0]
        else:
            out["action_log_prob"] = torch.distributions.Normal(out["loc"], 1.0).log_prob(out["action"]).sum(-1)
        return out


@pytest.mark.parametrize("policy", sorted(L.POLICIES))
def test_act_log_prob_catches_wrong_fast_path(policy: str) -> None:
    strategy = st.tuples(st.integers(0, 2**31 - 1), st.integers(1, L.MAX_N), st.sampled_from([0.1, 0.3, 0.6]),
                         st.sampled_from(sorted(L.RECIPES)))
    assert_catches(lambda x: L.check_act_log_prob(policy, *x, agent_factory=WrongFastPathAgent), strategy)


# ----------------------------------------------------------------------------------------------------
# GAE mutants (wrappers around the real torchrl GAE)
# ----------------------------------------------------------------------------------------------------
def gae_ignoring_done(cfg: Config) -> Callable[[TensorDict], TensorDict]:
    """GAE that never sees an episode end (done and terminated forced to False)."""
    gae = make_gae(cfg)

    def run(td: TensorDict) -> TensorDict:
        blind = td.clone()
        blind["next", "done"] = torch.zeros_like(blind["next", "done"])
        blind["next", "terminated"] = torch.zeros_like(blind["next", "terminated"])
        gae(blind)
        td["advantage"], td["value_target"] = blind["advantage"], blind["value_target"]
        return td

    return run


def gae_bootstrapping_terminations(cfg: Config) -> Callable[[TensorDict], TensorDict]:
    """GAE that treats every episode end as a truncation (terminated forced to False)."""
    gae = make_gae(cfg)

    def run(td: TensorDict) -> TensorDict:
        t = td.clone()
        t["next", "terminated"] = torch.zeros_like(t["next", "terminated"])
        gae(t)
        td["advantage"], td["value_target"] = t["advantage"], t["value_target"]
        return td

    return run


def gae_lambda_ignored(cfg: Config) -> Callable[[TensorDict], TensorDict]:
    """GAE that drops lambda (always lambda = 1)."""
    return make_gae(dataclasses.replace(cfg, gae_lambda=1.0))


def gae_flattening_envs(cfg: Config) -> Callable[[TensorDict], TensorDict]:
    """GAE over the envs laid end to end as one long trajectory: env e+1 leaks into env e's last steps."""
    gae = make_gae(cfg)

    def run(td: TensorDict) -> TensorDict:
        flat = td.reshape(1, -1).clone()
        gae(flat)
        td["advantage"] = flat["advantage"].reshape(*td.shape, 1)
        td["value_target"] = flat["value_target"].reshape(*td.shape, 1)
        return td

    return run


def test_lambda0_catches_lambda_ignored() -> None:
    assert_catches(lambda r: G.check_lambda0(r, gae_lambda_ignored), G.rollouts(lmbda=0.0))


def test_lambda1_catches_ignored_done() -> None:
    assert_catches(lambda r: G.check_lambda1(r, gae_ignoring_done), G.rollouts(lmbda=1.0, consistent=True))


def test_recursion_catches_ignored_done() -> None:
    assert_catches(lambda r: G.check_recursion(r, gae_ignoring_done), G.rollouts())


def test_recursion_catches_lambda_ignored() -> None:
    assert_catches(lambda r: G.check_recursion(r, gae_lambda_ignored), G.rollouts())


def test_termination_cut_catches_ignored_done() -> None:
    assert_catches(lambda c: G.check_termination_cuts(c, gae_ignoring_done), G.boundary_cases())


def test_bootstrap_catches_bootstrapped_termination() -> None:
    assert_catches(lambda c: G.check_bootstrap(c, gae_bootstrapping_terminations), G.boundary_cases())


def test_bootstrap_catches_ignored_done() -> None:
    assert_catches(lambda c: G.check_bootstrap(c, gae_ignoring_done), G.boundary_cases())


def test_env_independence_catches_flattened_envs() -> None:
    assert_catches(lambda c: G.check_env_independence(c, gae_flattening_envs), G.boundary_cases())



# ----------------------------------------------------------------------------------------------------
# Sampler mutant
# ----------------------------------------------------------------------------------------------------
class RepeatingSampler(MinibatchSampler):
    """Draws minibatch indices with replacement: samples repeat, others are never visited."""

    def indices(self, n: int):
        for _ in range(self.epochs):
            yield from torch.randint(0, n, (n,), generator=self.generator).split(self.minibatch_size)


def test_sampler_catches_repeating_sampler() -> None:
    assert_catches(lambda c: S.check_sampler(c, RepeatingSampler), S.sampler_cases())
