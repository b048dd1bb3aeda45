"""The paper's surrogate objectives (Eqs. 6-9) over torchrl's losses, the adaptive-KL rule, the total loss.

With r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t) and A_t the advantage estimate:

* ``none``        L^CPI  = E[r_t A_t]                                   (Eq. 6; Table 1, first row)
* ``clip``        L^CLIP = E[min(r_t A_t, clip(r_t, 1-eps, 1+eps) A_t)]  (Eq. 7)
* ``kl_fixed``    L^KLPEN = E[r_t A_t - beta KL[pi_old(.|s_t), pi(.|s_t)]] (Eq. 8), beta constant
* ``kl_adaptive`` Eq. 8 with beta adapted after each policy update (Sec. 4):
                  d = E[KL[pi_old, pi]]; d < d_targ/1.5 -> beta/2; d > 1.5 d_targ -> beta*2

Every loss adds c1 * (V(s_t) - V_targ)^2 (squared error, Eq. 9; optionally clipped) and
-c2 * entropy, and normalizes advantages per minibatch. torchrl returns *losses* (to minimise):
``loss_objective = -L``, ``loss_critic = c1 L^VF``, ``loss_entropy = -c2 S``; :func:`total_loss`
sums them into -L^{CLIP+VF+S}.

Where each equation lives, what it is held against (``tests/reference.py``) and by which property
test (``tests/test_properties_*.py``, mutants in ``tests/test_mutants.py``):

| paper | here | reference | property tests |
|---|---|---|---|
| r_t (Sec. 3) | torchrl ``PPOLoss`` log-weight | ``ratio`` | ``test_ratio`` |
| Eq. 6 L^CPI | ``PPOLoss`` (``none``) | ``l_cpi`` | ``test_reference_values``, ``test_theta_old`` |
| Eq. 7 L^CLIP | ``ClipPPOLoss`` (``clip``), :func:`set_clip_epsilon` | ``l_clip`` | ``test_pessimism``, ``test_clipped_gradients_vanish``, ``test_eps_monotone`` |
| Eq. 8 L^KLPEN | ``KLPENPPOLoss`` (``kl_*``), :func:`mean_kl` | ``l_klpen``, ``*_kl`` | ``test_reference_values``, ``test_kl_estimate`` |
| Sec. 4 beta rule | :class:`KLController` | ``adapt_beta`` | ``test_adaptive_beta_rule`` |
| Eq. 9 total | :func:`total_loss` (c1 ``loss_critic``, c2 ``loss_entropy``) | ``eq9_loss``, ``l_vf``, ``l_vf_clipped`` | ``test_reference_values``, ``test_value_clipping``, ``test_entropy_bonus_lowers_loss`` |
| advantage normalization (37 details) | torchrl ``normalize_advantage`` | ``normalize_advantage`` | ``test_minibatch_advantages_standardized``, ``test_normalized_loss_affine_invariant`` |
| Eq. 10 (lambda = 1) | :func:`ppo_pipeline.algo.advantages.make_gae` | ``discounted_return_minus_value`` | ``test_gae_lambda1_is_return_minus_value`` |
| Eq. 11 GAE | :func:`ppo_pipeline.algo.advantages.make_gae` | ``gae_recursion``, ``gae_closed_form`` | ``test_gae_matches_reference_recursion``, ``test_gae_termination_cuts_the_future`` |
| Eq. 12 delta_t | :func:`ppo_pipeline.algo.advantages.make_gae` | ``td_residual`` | ``test_gae_lambda0_is_td_residual`` |
| V(s_{t+1}) bootstrap | :func:`ppo_pipeline.algo.advantages.next_state_value` | ``gae_recursion`` | ``test_gae_truncation_bootstraps_termination_does_not`` |

Workaround (the one place): torchrl's ``KLPENPPOLoss`` adapts beta inside every ``forward`` call,
i.e. after every minibatch and from that minibatch's KL alone. The paper adapts it once per policy
update from the KL over the batch. We build the loss with ``increment=decrement=1`` (its own rule
off) and apply the paper's rule in :class:`KLController`; ``tests/test_objectives.py`` shows the
per-minibatch behaviour this avoids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tensordict import TensorDictBase

from .. import batch as keys
from .. import workarounds
from ..config import OBJECTIVES, Config
from . import compiling
from .policy import Agent

with workarounds.distribution_default_kept():  # torchrl's import turns it off process-wide (workaround 6)
    from torchrl.objectives import ClipPPOLoss, KLPENPPOLoss, PPOLoss


@dataclass(frozen=True)
class Objective:
    """One of the paper's surrogate objectives: its equation, whether it clips r_t (epsilon) and penalizes the KL
    (beta), whether beta follows the adaptive rule, and the torchrl loss that trains it."""

    name: str
    equation: str
    clipped: bool
    penalized: bool
    adaptive_beta: bool
    loss: type


# The one table of objectives (solo runs build its torchrl loss; packs its member-wise epsilon and beta).
OBJECTIVE_TABLE: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective("none", "Eq. 6 (L^CPI)", clipped=False, penalized=False, adaptive_beta=False, loss=PPOLoss),
        Objective("clip", "Eq. 7 (L^CLIP)", clipped=True, penalized=False, adaptive_beta=False, loss=ClipPPOLoss),
        Objective(
            "kl_fixed",
            "Eq. 8 (L^KLPEN), beta constant",
            clipped=False,
            penalized=True,
            adaptive_beta=False,
            loss=KLPENPPOLoss,
        ),
        Objective(
            "kl_adaptive",
            "Eq. 8 (L^KLPEN), beta adapted (Sec. 4)",
            clipped=False,
            penalized=True,
            adaptive_beta=True,
            loss=KLPENPPOLoss,
        ),
    )
}
assert tuple(OBJECTIVE_TABLE) == tuple(sorted(OBJECTIVES, key=("none", "clip", "kl_fixed", "kl_adaptive").index))


def objective_of(cfg: Config) -> Objective:
    return OBJECTIVE_TABLE[cfg.objective]


def epsilon_of(cfg: Config) -> float:
    """epsilon of the run's clip (inf where its objective has none)."""
    return cfg.clip_epsilon if objective_of(cfg).clipped else math.inf


def beta_of(cfg: Config) -> float:
    """beta of the run's KL penalty (0 where its objective has none)."""
    return cfg.kl_beta if objective_of(cfg).penalized else 0.0


def make_loss(cfg: Config, agent: Agent) -> PPOLoss:
    """The torchrl loss module for ``cfg.objective``.

    In: a minibatch TensorDict with ``observation``, ``action``, ``action_log_prob``, ``advantage``,
    ``value_target`` (+ ``state_value`` for value clipping, + the old dist params for KL).
    Out: ``loss_objective``, ``loss_critic``, ``loss_entropy`` (when c2 > 0), ``entropy``, ``kl_approx``,
    ``clip_fraction`` (clip), ``kl`` (KL objectives).
    """
    common = {
        "entropy_bonus": True,  # always computed so the entropy is logged; c2 = 0 adds nothing
        "entropy_coeff": cfg.entropy_coef,
        "critic_coeff": cfg.value_coef,
        "loss_critic_type": "l2",  # Eq. 9: squared error, not torchrl's default smooth-L1
        "normalize_advantage": cfg.normalize_advantage,
        "clip_value": cfg.clip_value if cfg.clip_value > 0 else None,
        "functional": False,  # plain modules: no per-call parameter swapping overhead
        "log_explained_variance": False,  # the trainer computes it once over the whole batch instead
    }
    spec = objective_of(cfg)
    if spec.clipped:
        common["clip_epsilon"] = cfg.clip_epsilon
    if spec.penalized:
        common.update(dtarg=cfg.kl_target, beta=cfg.kl_beta, increment=1.0, decrement=1.0)
    return spec.loss(agent.actor, agent.critic, **common)


class KLController:
    """The paper's adaptive-KL rule (Sec. 4), applied once per policy update.

    d < d_targ / 1.5 -> beta <- beta / 2;  d > d_targ * 1.5 -> beta <- beta * 2;  else unchanged.
    """

    def __init__(self, kl_target: float):
        self.kl_target = kl_target

    def next_beta(self, beta: float, d: float) -> float:
        if d < self.kl_target / 1.5:
            return beta / 2.0
        if d > self.kl_target * 1.5:
            return beta * 2.0
        return beta


KL_CHUNK = 4096  # rows per forward pass of the KL after an update (solo and pack)


@torch.no_grad()
def mean_kl(agent: Agent, batch: TensorDictBase, chunk: int = KL_CHUNK) -> float:
    """d = E_t[KL[pi_old(.|s_t), pi(.|s_t)]] over a batch [N, T] holding the old dist params (a recurrent
    policy's sequences are replayed whole: chunks of envs, not of steps)."""
    total, n = 0.0, 0
    inputs = [keys.OBSERVATION] + ([keys.IS_INIT, keys.STATE_H, keys.STATE_C] if agent.recurrent else [])
    parts = (
        batch.split(max(chunk // batch.batch_size[-1], 1), dim=0) if agent.recurrent else batch.reshape(-1).split(chunk)
    )
    for part in parts:
        old = agent.actor.build_dist_from_params(part)
        new = agent.actor.get_dist(part.select(*inputs).clone())
        kl = torch.distributions.kl_divergence(old, new)
        total += float(kl.sum())
        n += kl.numel()
    return total / max(n, 1)


def total_loss(out: TensorDictBase) -> torch.Tensor:
    """-L^{CLIP+VF+S} (Eq. 9), the quantity one Adam step minimises.

    = ``loss_objective`` (-L^CLIP, -L^KLPEN or -L^CPI) + ``loss_critic`` (c1 L^VF) + ``loss_entropy``
    (-c2 S); torchrl's terms carry their signs and coefficients already. The critic and entropy terms
    are absent when their coefficient makes torchrl leave them out.
    """
    loss = out["loss_objective"]
    for key in ("loss_critic", "loss_entropy"):
        if key in out.keys():
            loss = loss + out[key]
    return loss


def set_clip_epsilon(loss: PPOLoss, value: float) -> None:
    """Write epsilon * alpha into ClipPPOLoss's buffer (other objectives have none)."""
    if isinstance(loss, ClipPPOLoss):
        loss.clip_epsilon.fill_(value)


def get_beta(loss: PPOLoss) -> float | None:
    return float(loss.beta) if isinstance(loss, KLPENPPOLoss) else None


def set_beta(loss: PPOLoss, value: float) -> None:
    if isinstance(loss, KLPENPPOLoss):
        loss.beta.fill_(value)


LOSS_TERMS = ("loss_objective", "loss_critic", "loss_entropy", "entropy", "kl_approx", "clip_fraction")


def loss_step(loss_module: torch.nn.Module) -> Callable[[TensorDictBase], dict[str, torch.Tensor]]:
    """mb -> the loss terms (detached) and ``loss`` = -L^{CLIP+VF+S}, after ``loss.backward()``."""

    def step(mb: TensorDictBase) -> dict[str, torch.Tensor]:
        out = loss_module(mb)
        loss = total_loss(out)
        loss.backward()
        terms = {k: out[k].detach() for k in LOSS_TERMS if k in out.keys()}
        terms["loss"] = loss.detach()
        return terms

    return step


STEP_TERMS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "loss")


class TorchRLObjective:
    """The objective stage of a solo run (one member): torchrl's loss for ``cfg.objective`` (:func:`make_loss`),
    its forward and backward in one step, compiled where that pays (:mod:`.compiling`).

    The stage's interface, shared with the pack's member-wise objective (:class:`ppo_pipeline.pack.objective.MemberObjective`):
    :meth:`step` (a minibatch -> the terms, one value per member [P], after the backward), :meth:`mean_kl`,
    :meth:`set_epsilon`, :attr:`beta` / :meth:`set_beta`, ``state_dict``.
    """

    def __init__(
        self, cfg: Config, agent: Agent, *, compile: bool = False, before_retry: Callable[[], None] | None = None
    ):
        self.cfg, self.agent = cfg, agent
        self.loss = make_loss(cfg, agent).to(next(agent.parameters()).device)
        self._step = compiling.MaybeCompiled(loss_step(self.loss), compile, "update", before_retry=before_retry)

    @property
    def compiled(self) -> bool:
        """Whether the step runs under ``torch.compile`` (False again after a failure to compile)."""
        return self._step.compiled

    def step(self, mb: TensorDictBase) -> dict[str, torch.Tensor]:
        """mb [M] -> ``STEP_TERMS`` [1] each (detached; ``value_loss`` without c1, ``loss`` Eq. 9's total), after
        ``loss.backward()``."""
        out = self._step(mb)
        terms = {
            "policy_loss": out["loss_objective"],
            "approx_kl": out["kl_approx"],
            "entropy": out["entropy"],
            "loss": out["loss"],
        }
        if "loss_critic" in out:
            terms["value_loss"] = out["loss_critic"] / max(self.cfg.value_coef, 1e-12)
        if "clip_fraction" in out:
            terms["clip_fraction"] = out["clip_fraction"]
        return {k: v.reshape(1) for k, v in terms.items()}

    def mean_kl(self, batch: TensorDictBase) -> torch.Tensor:
        """d [1]: :func:`mean_kl` over the batch [N, T]."""
        return torch.tensor([mean_kl(self.agent, batch)])

    def set_epsilon(self, values: Sequence[float]) -> None:
        set_clip_epsilon(self.loss, values[0])

    @property
    def beta(self) -> list[float]:
        b = get_beta(self.loss)
        return [0.0 if b is None else b]

    def set_beta(self, values: Sequence[float]) -> None:
        set_beta(self.loss, values[0])

    def state_dict(self) -> dict[str, Any]:
        return self.loss.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loss.load_state_dict(state)
