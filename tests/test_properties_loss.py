"""Property-based proof of the loss invariants (issue "Property-based proof of the loss, GAE and sampler
invariants"), invariants 1-7, 11 and 12.

Every property runs the pipeline's own objects -- :class:`ppo_pipeline.algo.policy.Agent` built from gymnasium
spaces with a recipe's :class:`Config` (``atari``/``mujoco``/``classic`` presets), the torchrl loss from
:func:`ppo_pipeline.algo.objectives.make_loss`, ``set_clip_epsilon``, ``mean_kl``, ``KLController`` -- on
generated minibatches, and holds them against ``tests/reference.py`` (the paper's Eqs. 2, 6-12 in plain
torch, float64).

Generated minibatches: 1-4096 samples; advantages with zeros, one sign or both, magnitudes 1e-3..1e6
(single extreme samples included); log-prob gaps log r in [-5, 5], exactly 0, +-5 and exactly on the clip
bounds; Gaussian (Box) and Categorical (Discrete) policies; eps = recipe eps x alpha (the annealed value
the trainer writes with ``set_clip_epsilon``).

Each ``check_*`` function is one invariant; it takes the object under test as an argument so that
``tests/test_mutants.py`` can run the very same check against deliberately broken objects.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import pytest
import reference as ref
import torch
from hypothesis import assume, given
from hypothesis import strategies as st
from tensordict import TensorDict
from torchrl.objectives import PPOLoss

from ppo_pipeline.algo.objectives import (
    KLController,
    make_loss,
    mean_kl,
    set_clip_epsilon,
)
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.config import Config, atari, classic, mujoco

Tensor = torch.Tensor
LossFactory = Callable[[Config, Agent], PPOLoss]
AgentFactory = Callable[[gym.Space, gym.Space, Config], Agent]

RECIPES: dict[str, Callable[..., Config]] = {"atari": atari, "mujoco": mujoco, "classic": classic}
# Vector observations: the atari preset's shared_trunk=True gives the shared-trunk path, the others separate nets.
POLICIES: dict[str, tuple[gym.Space, gym.Space]] = {
    "gaussian": (gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-1.0, 1.0, (2,))),
    "categorical": (gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(3)),
}
ADV_SPECIALS = [0.0, 1e-3, -1e-3, 1.0, -1.0, 1e6, -1e6]
MAX_N = 4096


# ----------------------------------------------------------------------------------------------------
# Generated minibatches
# ----------------------------------------------------------------------------------------------------
@dataclass
class Case:
    """One generated minibatch: the recipe's config, a fresh agent, and the TensorDict the loss reads."""

    cfg: Config
    agent: Agent
    td: TensorDict      # observation, action, action_log_prob (stored), advantage, value_target, state_value,
                        # and the old distribution's parameters (loc/scale or logits)
    eps: float          # epsilon x alpha written with set_clip_epsilon
    logp: Tensor        # log pi_theta(a|s) of the current agent (float32, as torchrl recomputes it)

    @property
    def n(self) -> int:
        return self.td.shape[0]

    def __repr__(self) -> str:
        gap = self.logp.double() - self.td["action_log_prob"].double()
        return (f"Case(objective={self.cfg.objective!r}, policy={'categorical' if self.agent.discrete else 'gaussian'}, "
                f"shared={self.agent.shared}, normalize={self.cfg.normalize_advantage}, n={self.n}, eps={self.eps:.4g}, "
                f"c1={self.cfg.value_coef}, c2={self.cfg.entropy_coef}, beta={self.cfg.kl_beta}, "
                f"clip_value={self.cfg.clip_value}, advantage={_short(self.td['advantage'])}, log_r={_short(gap)})")


def _short(t: Tensor) -> str:
    """A few values of a tensor for failure messages."""
    v = [f"{x:.4g}" for x in t.detach().reshape(-1).tolist()]
    return "[" + ", ".join(v if len(v) <= 8 else v[:4] + ["..."] + v[-3:]) + "]"


def dist_params(agent: Agent, obs: Tensor) -> dict[str, Tensor]:
    """The policy's distribution parameters straight from the agent's nn.Modules (no TensorDict, no torchrl)."""
    return agent.policy_head(agent.trunk(obs) if agent.shared else obs)


def state_value(agent: Agent, obs: Tensor) -> Tensor:
    """V(s) [n, 1] from the agent's value head."""
    return agent.value_net(agent.trunk(obs) if agent.shared else obs)


def ref_log_prob(params: dict[str, Tensor], action: Tensor) -> Tensor:
    """log pi(a|s) from the reference densities."""
    if "logits" in params:
        return ref.categorical_log_prob(action, params["logits"])
    return ref.gaussian_log_prob(action, params["loc"], params["scale"])


def ref_entropy(params: dict[str, Tensor]) -> Tensor:
    if "logits" in params:
        return ref.categorical_entropy(params["logits"])
    return ref.gaussian_entropy(params["scale"])


def ref_kl(old: dict[str, Tensor], new: dict[str, Tensor]) -> Tensor:
    """KL[pi_old, pi] per state."""
    if "logits" in new:
        return ref.categorical_kl(old["logits"], new["logits"])
    return ref.gaussian_kl(old["loc"], old["scale"], new["loc"], new["scale"])


def randomize_parameters(agent: Agent, gen: torch.Generator, scale: float) -> None:
    """Arbitrary parameters: every weight, bias and the log-std redrawn from N(0, scale^2)."""
    with torch.no_grad():
        for p in agent.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * scale)


def grads(y: Tensor, xs: list[Tensor]) -> list[Tensor]:
    """dy/dx for each x (zeros where y does not depend on x at all)."""
    if not y.requires_grad:
        return [torch.zeros_like(x) for x in xs]
    gs = torch.autograd.grad(y, xs, allow_unused=True)
    return [torch.zeros_like(x) if g is None else g for x, g in zip(xs, gs)]


def tol(scale: Tensor | float, rel: float = 1e-4, floor: float = 1e-6) -> float:
    """The stated tolerance: float32 pipeline vs float64 reference, relative to the size of the terms."""
    return rel * float(scale) + floor


@st.composite
def advantages(draw: st.DrawFn, n: int, gen: torch.Generator) -> Tensor:
    """A_t with zeros, one sign or both signs, magnitudes 1e-3..1e6 and single extreme samples."""
    sign = draw(st.sampled_from(["mixed", "positive", "negative"]))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    zero_frac = draw(st.sampled_from([0.0, 0.0, 0.25, 1.0]))
    a = torch.randn(n, generator=gen, dtype=torch.float64) * scale
    if sign == "positive":
        a = a.abs()
    elif sign == "negative":
        a = -a.abs()
    a[torch.rand(n, generator=gen) < zero_frac] = 0.0
    for i, v in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(ADV_SPECIALS)), max_size=4)):
        a[i] = v
    a = a.float()
    # Standardisation is only defined for a spread (or for all zeros); exclude numerically constant vectors.
    assume(n == 1 or bool((a == 0).all()) or float(a.double().std()) > 1e-3 * float(a.abs().max()))
    return a


@st.composite
def log_prob_gaps(draw: st.DrawFn, n: int, gen: torch.Generator, eps: float) -> Tensor:
    """log r_t = log pi_theta - log pi_theta_old in [-5, 5], with 0, +-5 and the clip bounds exactly."""
    kind = draw(st.sampled_from(["uniform", "near_one", "uniform"]))
    gap = (torch.rand(n, generator=gen, dtype=torch.float64) * 10 - 5) if kind == "uniform" \
        else torch.randn(n, generator=gen, dtype=torch.float64) * 0.1
    specials = [0.0, 5.0, -5.0, math.log1p(eps), math.log1p(-eps)]
    for i, v in draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(specials)), max_size=4)):
        gap[i] = v
    return gap.clamp(-5, 5)


@st.composite
def loss_cases(draw: st.DrawFn, *, objective: str | None = None, policy: str | None = None,
               theta_old: bool = False, normalize: bool | None = None, n: int | None = None,
               adv: Tensor | None = None, random_params: bool = False, min_n: int = 1) -> Case:
    """A recipe, a fresh agent and one generated minibatch (see the module docstring)."""
    recipe = draw(st.sampled_from(sorted(RECIPES)))
    cfg = RECIPES[recipe]()
    if objective is not None:
        cfg = dataclasses.replace(cfg, objective=objective)
    if normalize is not None:
        cfg = dataclasses.replace(cfg, normalize_advantage=normalize)
    policy = policy or draw(st.sampled_from(sorted(POLICIES)))
    n = n or draw(st.integers(min_n, MAX_N))
    seed = draw(st.integers(0, 2**31 - 1))
    alpha = draw(st.one_of(st.just(1.0), st.floats(0.05, 1.0)))
    eps = cfg.clip_epsilon * alpha
    gen = torch.Generator().manual_seed(seed)

    obs_space, act_space = POLICIES[policy]
    agent = fresh_agent(recipe, policy)
    if random_params:
        randomize_parameters(agent, gen, draw(st.sampled_from([0.1, 0.3, 0.6])))

    obs = (torch.rand(n, obs_space.shape[0], generator=gen) * 2 - 1) * draw(st.sampled_from([1.0, 5.0]))
    with torch.no_grad():
        params = dist_params(agent, obs)
        if agent.discrete:
            action = torch.randint(0, int(act_space.n), (n,), generator=gen)
        else:
            noise = torch.randn(params["loc"].shape, generator=gen) * draw(st.sampled_from([0.5, 1.0, 3.0]))
            action = params["loc"] + params["scale"] * noise
        logp = agent.actor.get_dist(TensorDict({"observation": obs}, [n])).log_prob(action)
        a = adv if adv is not None else draw(advantages(n, gen))
        gap = torch.zeros(n, dtype=torch.float64) if theta_old else draw(log_prob_gaps(n, gen, eps))
        stored = (logp.double() - gap).float()
        shift = 0.0 if theta_old else draw(st.sampled_from([0.01, 0.3, 1.0]))
        old = {k: v.clone() for k, v in params.items()}
        if shift:
            for k in old:
                z = torch.randn(old[k].shape, generator=gen) * shift
                old[k] = old[k] * z.exp() if k == "scale" else old[k] + z
        v = state_value(agent, obs)
        vscale = draw(st.sampled_from([0.1, 1.0, 100.0]))
        td = TensorDict({
            "observation": obs, "action": action, "action_log_prob": stored, "advantage": a.unsqueeze(-1),
            "value_target": v + torch.randn(v.shape, generator=gen) * vscale,
            "state_value": v + torch.randn(v.shape, generator=gen) * vscale * 0.5,
            **old,
        }, [n])
    return Case(cfg=cfg, agent=agent, td=td, eps=eps, logp=logp)


_AGENTS: dict[tuple, tuple[Agent, dict[str, Tensor]]] = {}


def fresh_agent(recipe: str, policy: str, agent_factory: AgentFactory = Agent) -> Agent:
    """The recipe's Agent for the policy, in its freshly initialised state (built once, then reloaded:
    building the torchrl operators costs ~0.1 s, reloading the initial parameters nothing)."""
    key = (recipe, policy, agent_factory)
    if key not in _AGENTS:
        torch.manual_seed(0)
        agent = agent_factory(*POLICIES[policy], RECIPES[recipe]())
        _AGENTS[key] = (agent, {k: v.clone() for k, v in agent.state_dict().items()})
    agent, init = _AGENTS[key]
    agent.load_state_dict(init)
    return agent


def build(factory: LossFactory, case: Case, *, per_sample: bool = False, **overrides) -> PPOLoss:
    """The loss as the trainer builds it (factory(cfg, agent), then set_clip_epsilon(eps x alpha))."""
    cfg = dataclasses.replace(case.cfg, **overrides)
    loss = factory(cfg, case.agent)
    set_clip_epsilon(loss, case.eps)
    if per_sample:
        loss.reduction = "none"     # the same loss, unreduced: per-sample terms for per-sample invariants
    return loss


def used_advantage(case: Case, dtype: torch.dtype = torch.float64) -> Tensor:
    """A-hat as the loss uses it: standardised per minibatch when the recipe says so (reference)."""
    a = case.td["advantage"].squeeze(-1).to(dtype)
    return ref.normalize_advantage(a) if case.cfg.normalize_advantage else a


def ref_ratio(case: Case) -> Tensor:
    return ref.ratio(ref.f64(case.logp), ref.f64(case.td["action_log_prob"]))


# ----------------------------------------------------------------------------------------------------
# 1. Pessimism (Eq. 7 vs Eq. 6)
# ----------------------------------------------------------------------------------------------------
def check_pessimism(case: Case, factory: LossFactory = make_loss) -> None:
    """Per sample L^CLIP <= L^CPI; equal when r in [1 - eps, 1 + eps] (Sec. 3: a pessimistic lower bound)."""
    with torch.no_grad():
        l_clip = -build(factory, case, per_sample=True, objective="clip")(case.td)["loss_objective"]
        l_cpi = -build(make_loss, case, per_sample=True, objective="none")(case.td)["loss_objective"]
    assert (l_clip <= l_cpi).all(), "L^CLIP > L^CPI for some sample"
    r = ref_ratio(case)
    inside = (r >= (1 - case.eps) * (1 + 1e-5)) & (r <= (1 + case.eps) * (1 - 1e-5))
    assert torch.equal(l_clip[inside], l_cpi[inside]), "L^CLIP != L^CPI inside the clip range"


@given(case=loss_cases())
def test_pessimism(case: Case) -> None:
    check_pessimism(case)


# ----------------------------------------------------------------------------------------------------
# 2. At theta = theta_old: L^CLIP = L^CPI = mean A-hat, and grad L^CLIP = grad L^PG (Eq. 2)
# ----------------------------------------------------------------------------------------------------
def check_theta_old(case: Case, factory: LossFactory = make_loss) -> None:
    """r = 1: L^CLIP = L^CPI = E[A-hat] (Eqs. 6, 7), and grad_theta L^CLIP = grad_theta L^PG (Eq. 2 -> Eq. 1)."""
    agent = case.agent
    actor_params = [p for p in agent.actor.parameters()]
    a_hat = used_advantage(case)
    out = build(factory, case, objective="clip")(case.td)
    with torch.no_grad():
        l_cpi = -build(make_loss, case, objective="none")(case.td)["loss_objective"]
    expect = a_hat.mean()
    assert abs(float(-out["loss_objective"].detach()) - float(expect)) <= tol(a_hat.abs().max()), "L^CLIP != mean A-hat"
    assert abs(float(l_cpi) - float(expect)) <= tol(a_hat.abs().max()), "L^CPI != mean A-hat"

    g_clip = grads(-out["loss_objective"], actor_params)
    params = dist_params(agent, case.td["observation"])
    l_pg = ref.l_pg(ref_log_prob(params, case.td["action"]), used_advantage(case, torch.float32)).mean()
    g_pg = grads(l_pg, actor_params)
    gmax = max(float(g.abs().max()) for g in g_pg if g is not None)
    for gc, gp in zip(g_clip, g_pg):
        assert torch.allclose(gc, gp, rtol=1e-3, atol=1e-4 * gmax + 1e-9), "grad L^CLIP != grad L^PG at r = 1"


@given(case=loss_cases(theta_old=True, normalize=None))
def test_theta_old(case: Case) -> None:
    check_theta_old(case)


@given(case=loss_cases(theta_old=True, normalize=False))
def test_theta_old_unnormalized(case: Case) -> None:
    """The same with normalisation off, so that mean A-hat is not 0 by construction."""
    check_theta_old(case)


# ----------------------------------------------------------------------------------------------------
# 3. Clipped gradients vanish
# ----------------------------------------------------------------------------------------------------
def check_clipped_gradients(case: Case, factory: LossFactory = make_loss) -> None:
    """d L^CLIP / d(sample t) = 0 exactly iff (A > 0 and r > 1 + eps) or (A < 0 and r < 1 - eps) (or A = 0).

    The per-sample gradient is the gradient of the policy term w.r.t. that sample's observation (each
    sample's log-prob depends on its own observation only).
    """
    obs = case.td["observation"].clone().requires_grad_(True)
    td = case.td.clone(False)
    td["observation"] = obs
    out = build(factory, case, objective="clip")(td)
    (g,) = grads(out["loss_objective"], [obs])
    zero = (g == 0).all(-1)

    r, a, eps = ref_ratio(case), used_advantage(case), case.eps
    expect_zero = ((a > 0) & (r > 1 + eps)) | ((a < 0) & (r < 1 - eps)) | (a == 0)
    # leave out samples within float32 rounding of a clip bound or, once standardised, of A-hat = 0
    near_bound = ((r / (1 + eps) - 1).abs() < 1e-5) | ((r / (1 - eps) - 1).abs() < 1e-5)
    near_zero = torch.zeros_like(near_bound)
    if case.cfg.normalize_advantage and case.n > 1:
        near_zero = a.abs() < 1e-4 * (1 + float(a.abs().max()))
    keep = ~(near_bound | near_zero)
    bad = keep & (zero != expect_zero)
    assert not bad.any(), (f"{int(bad.sum())} samples: gradient zero={zero[bad][:4].tolist()} but "
                           f"A={a[bad][:4].tolist()}, r={r[bad][:4].tolist()}, eps={eps}")


@given(case=loss_cases(normalize=False))
def test_clipped_gradients_vanish(case: Case) -> None:
    check_clipped_gradients(case)


@given(case=loss_cases())
def test_clipped_gradients_vanish_recipe_normalization(case: Case) -> None:
    check_clipped_gradients(case)


# ----------------------------------------------------------------------------------------------------
# 4. epsilon-monotonicity
# ----------------------------------------------------------------------------------------------------
def check_eps_monotone(case: Case, eps_pair: tuple[float, float], factory: LossFactory = make_loss) -> None:
    """On fixed data, eps1 <= eps2 implies L^CLIP(eps1) <= L^CLIP(eps2) (Eq. 7: a wider clip range)."""
    loss = build(factory, case, objective="clip")
    lo, hi = sorted(eps_pair)
    with torch.no_grad():
        set_clip_epsilon(loss, lo)
        l_lo = -float(loss(case.td)["loss_objective"])
        set_clip_epsilon(loss, hi)
        l_hi = -float(loss(case.td)["loss_objective"])
    assert l_hi >= l_lo - 1e-6 * abs(l_lo), f"L^CLIP fell from {l_lo} (eps={lo}) to {l_hi} (eps={hi})"


@given(case=loss_cases(), eps_pair=st.tuples(st.floats(1e-3, 0.99), st.floats(1e-3, 0.99)))
def test_eps_monotone(case: Case, eps_pair: tuple[float, float]) -> None:
    check_eps_monotone(case, eps_pair)


# ----------------------------------------------------------------------------------------------------
# 5. Loss values = reference (clip, kl_fixed, none; Eq. 9 with c1, c2), torchrl's sign conventions
# ----------------------------------------------------------------------------------------------------
def check_reference_values(case: Case, factory: LossFactory = make_loss) -> None:
    """torchrl returns losses: loss_objective = -E[L^surr], loss_critic = c1 E[L^VF], loss_entropy = -c2 E[S];
    their sum is -L^{surr+VF+S} (Eq. 9). Tolerance: 1e-4 of the mean |term| + 1e-6 (float32 vs float64)."""
    cfg, agent, td = case.cfg, case.agent, case.td
    loss = build(factory, case)
    with torch.no_grad():
        out = loss(td)
        obs = td["observation"]
        params = {k: ref.f64(v) for k, v in dist_params(agent, obs).items()}
        old = {k: ref.f64(td[k]) for k in params}
        r = ref.ratio(ref.f64(case.logp), ref.f64(td["action_log_prob"]))
        a = used_advantage(case)
        kl = ref_kl(old, params)
        if cfg.objective == "clip":
            surr = ref.l_clip(r, a, case.eps)
        elif cfg.objective == "none":
            surr = ref.l_cpi(r, a)
        else:
            surr = ref.l_klpen(r, a, kl, cfg.kl_beta)
        v, v_targ = ref.f64(state_value(agent, obs)).squeeze(-1), ref.f64(td["value_target"]).squeeze(-1)
        vf = ref.l_vf_clipped(v, ref.f64(td["state_value"]).squeeze(-1), v_targ, cfg.clip_value) \
            if cfg.clip_value > 0 else ref.l_vf(v, v_targ)
        ent = ref_entropy(params)
    c1, c2 = cfg.value_coef, cfg.entropy_coef
    got = {k: float(out[k]) if k in out.keys() else 0.0 for k in ("loss_objective", "loss_critic", "loss_entropy")}
    want = {"loss_objective": -float(surr.mean()), "loss_critic": c1 * float(vf.mean()),
            "loss_entropy": -c2 * float(ent.mean())}
    scales = {"loss_objective": (r * a).abs().mean() + cfg.kl_beta * kl.abs().mean(),
              "loss_critic": c1 * vf.mean(), "loss_entropy": c2 * ent.abs().mean()}
    for k in want:
        assert abs(got[k] - want[k]) <= tol(scales[k]), f"{cfg.objective}: {k}={got[k]} but Eq. gives {want[k]}"
    total = ref.eq9_loss(surr, vf, ent, c1, c2)
    assert abs(sum(got.values()) - float(total)) <= tol(sum(scales.values())), "total != -L^{surr+VF+S} (Eq. 9)"
    assert abs(float(out["entropy"]) - float(ent.mean())) <= tol(ent.abs().mean()), "entropy != S"
    if cfg.objective.startswith("kl"):
        assert torch.allclose(ref.f64(out["kl"]).squeeze(-1), kl, rtol=1e-4, atol=1e-5), "kl != KL[pi_old, pi]"


@pytest.mark.parametrize("objective", ["clip", "kl_fixed", "none"])
@given(data=st.data())
def test_reference_values(objective: str, data: st.DataObject) -> None:
    case = data.draw(loss_cases(objective=objective))
    c1 = data.draw(st.one_of(st.just(case.cfg.value_coef), st.just(0.0), st.floats(0.0, 2.0)))
    c2 = data.draw(st.one_of(st.just(case.cfg.entropy_coef), st.floats(0.0, 0.1)))
    beta = data.draw(st.one_of(st.just(case.cfg.kl_beta), st.floats(1e-3, 10.0)))
    clip_value = data.draw(st.one_of(st.just(case.cfg.clip_value), st.floats(1e-2, 10.0)))
    case.cfg = dataclasses.replace(case.cfg, value_coef=c1, entropy_coef=c2, kl_beta=beta, clip_value=clip_value)
    check_reference_values(case)


# ----------------------------------------------------------------------------------------------------
# 6. KL penalty estimate and the adaptive beta rule (Sec. 4)
# ----------------------------------------------------------------------------------------------------
def check_kl(case: Case, theta_old: bool, factory: LossFactory = make_loss) -> None:
    """The penalty's KL estimate (per state, torchrl's "kl") and the d the trainer adapts beta from
    (:func:`mean_kl`) are >= 0, 0 at theta = theta_old, and equal KL[pi_old, pi] of the reference."""
    with torch.no_grad():
        out = build(factory, case)(case.td)
        kl = ref.f64(out["kl"]).squeeze(-1)
        d = mean_kl(case.agent, case.td, chunk=1000)
        params = {k: ref.f64(v) for k, v in dist_params(case.agent, case.td["observation"]).items()}
        want = ref_kl({k: ref.f64(case.td[k]) for k in params}, params)
    assert (kl >= -1e-6).all(), f"negative KL estimate {float(kl.min())}"
    assert d >= -1e-6, f"mean_kl = {d} < 0"
    assert abs(d - float(want.mean())) <= tol(want.mean()), f"mean_kl = {d} != {float(want.mean())}"
    if theta_old:
        assert kl.abs().max() <= 1e-5 and abs(d) <= 1e-6, "KL != 0 at theta = theta_old"


@pytest.mark.parametrize("objective", ["kl_fixed", "kl_adaptive"])
@given(data=st.data())
def test_kl_estimate(objective: str, data: st.DataObject) -> None:
    theta_old = data.draw(st.booleans())
    check_kl(data.draw(loss_cases(objective=objective, theta_old=theta_old)), theta_old)


def check_beta_rule(controller: KLController, beta: float, d: float) -> None:
    """Sec. 4: d < d_targ/1.5 -> beta/2;  d > 1.5 d_targ -> 2 beta;  otherwise beta unchanged."""
    t = controller.kl_target
    new = controller.next_beta(beta, d)
    assert new == ref.adapt_beta(beta, d, t), f"beta {beta} -> {new} at d={d}, d_targ={t}"
    if d < t / 1.5:
        assert new == beta / 2
    elif d > 1.5 * t:
        assert new == beta * 2
    else:
        assert new == beta


@st.composite
def beta_rule_inputs(draw: st.DrawFn) -> tuple[float, float, float]:
    """(d_targ, beta, d) with d anywhere, on and around both thresholds."""
    t = draw(st.floats(1e-4, 1.0))
    beta = draw(st.floats(1e-6, 1e6))
    d = draw(st.one_of(st.floats(0.0, 10.0), st.sampled_from([0.0, t / 1.5, t * 1.5, t]),
                       st.floats(t / 1.5 * 0.9, t * 1.5 * 1.1)))
    return t, beta, d


@given(inputs=beta_rule_inputs())
def test_adaptive_beta_rule(inputs: tuple[float, float, float]) -> None:
    t, beta, d = inputs
    check_beta_rule(KLController(t), beta, d)


# ----------------------------------------------------------------------------------------------------
# 7. Advantage normalization
# ----------------------------------------------------------------------------------------------------
@st.composite
def normalization_cases(draw: st.DrawFn) -> tuple[Case, int]:
    m = draw(st.integers(2, 512))
    k = draw(st.integers(1, 8))
    return draw(loss_cases(objective="clip", normalize=True, theta_old=True, n=m * k)), m


def check_minibatch_standardized(case: Case, minibatch_size: int, factory: LossFactory = make_loss) -> None:
    """For every minibatch the sampler yields, the loss's A-hat has mean 0 and (sample) std 1.

    At r = 1 the per-sample objective is exactly A-hat (Eq. 7), so the loss's own A-hat is read off it.
    """
    from ppo_pipeline.algo.sampler import MinibatchSampler

    loss = build(factory, case, per_sample=True)
    sampler = MinibatchSampler(1, minibatch_size, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for mb in sampler(case.td):
            a = mb["advantage"].double()
            if float(a.std()) <= 1e-3 * float(a.abs().max()):
                continue                        # no spread in this minibatch: nothing to standardise
            a_hat = -ref.f64(loss(mb)["loss_objective"])
            assert abs(float(a_hat.mean())) <= 1e-4, f"minibatch A-hat mean {float(a_hat.mean())}"
            assert abs(float(a_hat.std()) - 1) <= 1e-4, f"minibatch A-hat std {float(a_hat.std())}"


@given(nc=normalization_cases())
def test_minibatch_advantages_standardized(nc: tuple[Case, int]) -> None:
    check_minibatch_standardized(*nc)


def check_affine_invariance(case: Case, a: float, b_rel: float, factory: LossFactory = make_loss) -> None:
    """With normalisation, A -> a A + b (a > 0) leaves every sample's policy loss unchanged (as long as the
    minibatch's std stays above the standardisation's floor)."""
    adv = case.td["advantage"]
    # torchrl floors the std at float32 resolution (1e-6): below it the standardisation is not affine-invariant
    assume(case.n > 1 and a * float(adv.double().std()) > 1e-4)
    b = b_rel * a * float(adv.double().std())
    loss = build(factory, case, per_sample=True)
    moved = case.td.clone()
    moved["advantage"] = (adv.double() * a + b).float()
    with torch.no_grad():
        before = ref.f64(loss(case.td)["loss_objective"])
        after = ref.f64(loss(moved)["loss_objective"])
    r = ref_ratio(case)
    a_hat = used_advantage(case)
    bound = 1e-4 * (r + 1) * (1 + abs(b_rel) + a_hat.abs() + math.sqrt(case.n) * 1e-2)
    assert ((before - after).abs() <= bound).all(), "normalised loss changed under A -> aA + b"


@given(case=loss_cases(normalize=True, min_n=2), a=st.floats(1e-2, 1e2), b_rel=st.floats(-100, 100))
def test_normalized_loss_affine_invariant(case: Case, a: float, b_rel: float) -> None:
    check_affine_invariance(case, a, b_rel)


# ----------------------------------------------------------------------------------------------------
# 11. Entropy bonus and value clipping
# ----------------------------------------------------------------------------------------------------
def set_spread(agent: Agent, k: float) -> None:
    """Raise the policy's entropy with k: Gaussian log-std = k; Categorical logits scaled by exp(-k)."""
    with torch.no_grad():
        if agent.discrete:
            net = agent.policy_head.net
            last = net[-1] if isinstance(net, torch.nn.Sequential) else net
            if not hasattr(agent, "_base_head"):
                agent._base_head = (last.weight.clone(), last.bias.clone())
            w, bias = agent._base_head
            last.weight.copy_(w * math.exp(-k) * 100)
            last.bias.copy_(bias * math.exp(-k) * 100)
        else:
            agent.policy_head.log_std.fill_(k)


def check_entropy_bonus(case: Case, ks: tuple[float, float], c2: float, factory: LossFactory = make_loss) -> None:
    """loss_entropy = -c2 S (Eq. 9): as the entropy rises the loss does not rise (c2 >= 0)."""
    loss = build(factory, case, entropy_coef=c2)
    res = []
    for k in sorted(ks):
        set_spread(case.agent, k)
        with torch.no_grad():
            out = loss(case.td)
            s_ref = ref_entropy({k2: ref.f64(v) for k2, v in dist_params(case.agent, case.td["observation"]).items()})
        le = float(out["loss_entropy"]) if "loss_entropy" in out.keys() else 0.0
        assert abs(le + c2 * float(s_ref.mean())) <= tol(c2 * s_ref.abs().mean()), "loss_entropy != -c2 S"
        res.append((float(s_ref.mean()), le))
    (s1, l1), (s2, l2) = res
    assert s2 >= s1 - 1e-6, "test set-up: entropy should rise with k"
    assert l2 <= l1 + 1e-6 * (1 + abs(l1)), f"entropy rose {s1}->{s2} but loss_entropy rose {l1}->{l2}"


@given(case=loss_cases(), ks=st.tuples(st.floats(-3, 2), st.floats(-3, 2)),
       c2=st.one_of(st.just(0.01), st.just(0.0), st.floats(0.0, 1.0)))
def test_entropy_bonus_lowers_loss(case: Case, ks: tuple[float, float], c2: float) -> None:
    check_entropy_bonus(case, ks, c2)


def check_value_clipping(case: Case, clip: float, factory: LossFactory = make_loss) -> None:
    """Clipped value loss = c1 E[max((V - V_targ)^2, (V_clip - V_targ)^2)] (baselines ppo2's form, the source of
    torchrl's ``_clip_value_loss``): never above that max(...) form, never below the unclipped loss, equal to it
    when no value moved more than the radius."""
    c1 = case.cfg.value_coef
    with torch.no_grad():
        clipped = float(build(factory, case, clip_value=clip)(case.td)["loss_critic"])
        plain = float(build(make_loss, case, clip_value=0.0)(case.td)["loss_critic"])
        obs = case.td["observation"]
        v = ref.f64(state_value(case.agent, obs)).squeeze(-1)
        v_old = ref.f64(case.td["state_value"]).squeeze(-1)
        v_targ = ref.f64(case.td["value_target"]).squeeze(-1)
    max_form = c1 * float(ref.l_vf_clipped(v, v_old, v_targ, clip).mean())
    t = tol(max_form)
    assert clipped <= max_form + t, f"clipped value loss {clipped} exceeds the max(...) form {max_form}"
    assert clipped >= max_form - t, f"clipped value loss {clipped} below the max(...) form {max_form}"
    assert clipped >= plain - t, f"clipped value loss {clipped} below the unclipped {plain}"
    if bool(((v - v_old).abs() <= clip).all()):
        assert abs(clipped - plain) <= t, "clipping changed the loss although no value moved past the radius"


@given(case=loss_cases(), clip=st.one_of(st.floats(1e-3, 10.0), st.just(1e6)))
def test_value_clipping(case: Case, clip: float) -> None:
    check_value_clipping(case, clip)


# ----------------------------------------------------------------------------------------------------
# 12. The ratio, and the collector's fast path
# ----------------------------------------------------------------------------------------------------
def check_ratio(case: Case, factory: LossFactory = make_loss) -> None:
    """r_t = exp(log pi_theta(a_t|s_t) - stored log-prob) for the loss's ratio, any parameters (Sec. 3).

    With objective none (L^CPI, Eq. 6), no normalisation and A = 1, the per-sample objective is r itself.
    """
    td = case.td.clone()
    td["advantage"] = torch.ones_like(td["advantage"])
    loss = build(factory, case, per_sample=True, objective="none", normalize_advantage=False)
    with torch.no_grad():
        r = -ref.f64(loss(td)["loss_objective"])
        params = {k: ref.f64(v) for k, v in dist_params(case.agent, td["observation"]).items()}
        logp = ref_log_prob(params, td["action"])
    want = ref.ratio(logp, ref.f64(td["action_log_prob"]))
    rel = 1e-5 + 3e-7 * (1 + logp.abs())
    assert ((r - want).abs() <= rel * want).all(), "loss ratio != exp(new log-prob - stored log-prob)"


@pytest.mark.parametrize("policy", sorted(POLICIES))
@given(data=st.data())
def test_ratio(policy: str, data: st.DataObject) -> None:
    check_ratio(data.draw(loss_cases(policy=policy, random_params=True)))


def check_act_log_prob(policy: str, seed: int, n: int, param_scale: float, recipe: str,
                       agent_factory: AgentFactory = Agent) -> None:
    """Agent.act (the collector's fast path) returns, for its sampled action, the same log-prob as the
    ProbabilisticActor the loss uses, and the reference density; so r = 1 at theta = theta_old end to end."""
    obs_space, act_space = POLICIES[policy]
    cfg = RECIPES[recipe]()
    agent = fresh_agent(recipe, policy, agent_factory)
    gen = torch.Generator().manual_seed(seed)
    randomize_parameters(agent, gen, param_scale)
    obs = torch.rand(n, obs_space.shape[0], generator=gen) * 4 - 2
    out = agent.act(obs)
    with torch.no_grad():
        td = TensorDict({"observation": obs}, [n])
        lp_actor = agent.actor.get_dist(td).log_prob(out["action"])
        params = {k: ref.f64(v) for k, v in dist_params(agent, obs).items()}
        lp_ref = ref_log_prob(params, out["action"])
    assert out["action_log_prob"].shape == lp_actor.shape
    assert torch.allclose(out["action_log_prob"], lp_actor, rtol=1e-5, atol=1e-5), "act log-prob != actor's"
    assert torch.allclose(ref.f64(out["action_log_prob"]), lp_ref, rtol=1e-5, atol=1e-4), "act log-prob != ref"
    # end to end: the stored log-prob from act gives r = 1 in the pipeline's loss
    v = agent.value_net(agent.trunk(obs) if agent.shared else obs).detach()
    mb = TensorDict({"observation": obs, "action": out["action"], "action_log_prob": out["action_log_prob"],
                     "advantage": torch.ones(n, 1), "value_target": v, "state_value": v}, [n])
    loss = make_loss(dataclasses.replace(cfg, objective="none", normalize_advantage=False), agent)
    loss.reduction = "none"
    with torch.no_grad():
        r = -loss(mb)["loss_objective"]
    assert torch.allclose(r, torch.ones_like(r), atol=1e-4), "r != 1 on the collector's own log-probs"


@pytest.mark.parametrize("policy", sorted(POLICIES))
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, MAX_N), param_scale=st.sampled_from([0.1, 0.3, 0.6]),
       recipe=st.sampled_from(sorted(RECIPES)))
def test_act_log_prob_matches_actor(policy: str, seed: int, n: int, param_scale: float, recipe: str) -> None:
    check_act_log_prob(policy, seed, n, param_scale, recipe)
