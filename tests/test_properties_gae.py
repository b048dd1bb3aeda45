"""Property-based proof of the GAE invariants (issue invariants 8 and 9).

The subject is :func:`ppo_pipeline.algo.advantages.make_gae` (torchrl's ``GAE`` over precomputed values) built
from a recipe's Config with generated gamma, lambda in [0, 1], run on generated rollouts shaped like the
collector's output: TensorDict [envs, T] (time last) with ``state_value`` and, under ``"next"``, ``reward``,
``done``, ``terminated``, ``truncated``, ``state_value`` ([.., 1]); episode ends anywhere, terminations and
truncations. The reference is ``tests/reference.py`` (Eqs. 10-12, float64).

``check_*`` functions take the GAE factory so that ``tests/test_mutants.py`` can run them on broken GAEs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import reference as ref
import torch
from hypothesis import given
from hypothesis import strategies as st
from tensordict import TensorDict

from ppo_pipeline.algo.advantages import make_gae
from ppo_pipeline.config import Config, atari, classic, mujoco

Tensor = torch.Tensor
GaeFactory = Callable[[Config], Callable[[TensorDict], TensorDict]]
RECIPES = {"atari": atari, "mujoco": mujoco, "classic": classic}
EPS32 = float(torch.finfo(torch.float32).eps)


@dataclass
class Rollout:
    cfg: Config          # the recipe with the generated gamma and lambda
    td: TensorDict       # [envs, T], as the collector writes it

    def __repr__(self) -> str:
        d = self.td["next", "done"].squeeze(-1)
        t = self.td["next", "terminated"].squeeze(-1)
        return (f"Rollout(gamma={self.cfg.gamma!r}, lambda={self.cfg.gae_lambda!r}, shape={list(self.td.shape)}, "
                f"dones={d.nonzero().tolist()[:8]}, terminations={t.nonzero().tolist()[:8]})")

    def arrays(self) -> dict[str, Tensor]:
        """float64 / bool [envs, T] arrays for the reference."""
        td = self.td
        return {"reward": ref.f64(td["next", "reward"]).squeeze(-1), "value": ref.f64(td["state_value"]).squeeze(-1),
                "next_value": ref.f64(td["next", "state_value"]).squeeze(-1),
                "done": td["next", "done"].squeeze(-1), "terminated": td["next", "terminated"].squeeze(-1)}


def make_rollout(cfg: Config, envs: int, T: int, seed: int, p_done: float, p_term: float, scale: float,
                 consistent: bool) -> Rollout:
    """A rollout; ``consistent``: V(s_{t+1}) under "next" is the next row's V(s_t) inside an episode (as the
    collector writes it), a truncation's is the final observation's value, a termination's is garbage."""
    g = torch.Generator().manual_seed(seed)
    done = torch.rand(envs, T, generator=g) < p_done
    terminated = done & (torch.rand(envs, T, generator=g) < p_term)
    reward = torch.randn(envs, T, generator=g) * scale
    v_all = torch.randn(envs, T + 1, generator=g) * scale
    value = v_all[:, :T]
    if consistent:
        final = torch.randn(envs, T, generator=g) * scale            # V(final obs) of a truncated episode
        next_value = torch.where(done, final, v_all[:, 1:])
    else:
        next_value = torch.randn(envs, T, generator=g) * scale
    return Rollout(cfg, rollout_td(reward, value, next_value, done, terminated))


def rollout_td(reward: Tensor, value: Tensor, next_value: Tensor, done: Tensor, terminated: Tensor) -> TensorDict:
    envs, T = reward.shape
    return TensorDict({
        "state_value": value.float().unsqueeze(-1),
        "next": {"reward": reward.float().unsqueeze(-1), "state_value": next_value.float().unsqueeze(-1),
                 "done": done.unsqueeze(-1), "terminated": terminated.unsqueeze(-1),
                 "truncated": (done & ~terminated).unsqueeze(-1)},
    }, [envs, T])


unit = st.one_of(st.just(0.0), st.just(1.0), st.floats(0.0, 1.0))


@st.composite
def rollouts(draw: st.DrawFn, *, gamma: float | None = None, lmbda: float | None = None, consistent: bool = False,
             max_T: int = 512, p_done: float | None = None) -> Rollout:
    """envs x T <= 4096 samples, gamma and lambda in [0, 1], episode ends anywhere."""
    envs = draw(st.integers(1, 8))
    T = draw(st.integers(1, min(max_T, 4096 // envs)))
    cfg = RECIPES[draw(st.sampled_from(sorted(RECIPES)))]()
    cfg = dataclasses.replace(cfg, gamma=draw(unit) if gamma is None else gamma,
                              gae_lambda=draw(unit) if lmbda is None else lmbda)
    return make_rollout(cfg, envs, T, draw(st.integers(0, 2**31 - 1)),
                        draw(st.sampled_from([0.0, 0.02, 0.3, 1.0])) if p_done is None else p_done,
                        draw(st.sampled_from([0.0, 0.5, 1.0])), draw(st.sampled_from([1e-2, 1.0, 1e3])), consistent)


def run(factory: GaeFactory, rollout: Rollout) -> tuple[Tensor, Tensor]:
    """(advantage, value_target) [envs, T] in float64 from the GAE under test."""
    td = rollout.td.clone()
    factory(rollout.cfg)(td)
    return ref.f64(td["advantage"]).squeeze(-1), ref.f64(td["value_target"]).squeeze(-1)


def assert_close(got: Tensor, want: Tensor, rollout: Rollout, what: str) -> None:
    """Tolerance: float32 recursion vs float64 reference, 4 T eps32 (max|A| + max|inputs|) + 1e-6."""
    a = rollout.arrays()
    size = float(want.abs().max()) + max(float(a[k].abs().max()) for k in ("reward", "value", "next_value"))
    atol = 4 * rollout.td.shape[-1] * EPS32 * size + 1e-6
    err = (got - want).abs()
    assert float(err.max()) <= atol, f"{what}: max error {float(err.max()):.3g} > {atol:.3g} at {err.argmax().item()}"


# ----------------------------------------------------------------------------------------------------
# 8. lambda = 0 -> delta_t (Eq. 12); lambda = 1 -> discounted return - V (Eq. 10); any -> Eq. 11
# ----------------------------------------------------------------------------------------------------
def check_lambda0(rollout: Rollout, factory: GaeFactory = make_gae) -> None:
    """GAE(gamma, 0) = delta_t = r_t + gamma V(s_{t+1}) - V(s_t) (Eq. 12; no bootstrap past a termination)."""
    a = rollout.arrays()
    adv, _ = run(factory, rollout)
    want = ref.td_residual(a["reward"], a["value"], a["next_value"], a["terminated"], rollout.cfg.gamma)
    assert_close(adv, want, rollout, "lambda=0 vs delta_t (Eq. 12)")


@given(rollout=rollouts(lmbda=0.0))
def test_gae_lambda0_is_td_residual(rollout: Rollout) -> None:
    check_lambda0(rollout)


def check_lambda1(rollout: Rollout, factory: GaeFactory = make_gae) -> None:
    """GAE(gamma, 1) = -V(s_t) + r_t + gamma r_{t+1} + ... + gamma^{T-t} V(s_T) (Eq. 10), cut at episode ends."""
    a = rollout.arrays()
    adv, _ = run(factory, rollout)
    want = ref.discounted_return_minus_value(a["reward"], a["value"], a["next_value"], a["done"], a["terminated"],
                                             rollout.cfg.gamma)
    assert_close(adv, want, rollout, "lambda=1 vs discounted return - V (Eq. 10)")


@given(rollout=rollouts(lmbda=1.0, consistent=True))
def test_gae_lambda1_is_return_minus_value(rollout: Rollout) -> None:
    check_lambda1(rollout)


def check_recursion(rollout: Rollout, factory: GaeFactory = make_gae) -> None:
    """Any gamma, lambda: A_t = delta_t + gamma lambda A_{t+1} (Eq. 11) = sum_l (gamma lambda)^l delta_{t+l};
    value_target = A_t + V(s_t)."""
    a = rollout.arrays()
    g, l = rollout.cfg.gamma, rollout.cfg.gae_lambda
    adv, target = run(factory, rollout)
    rec = ref.gae_recursion(a["reward"], a["value"], a["next_value"], a["done"], a["terminated"], g, l)
    assert_close(adv, rec, rollout, "GAE vs the Eq. 11 recursion")
    if rollout.td.shape[-1] <= 256:
        closed = ref.gae_closed_form(a["reward"], a["value"], a["next_value"], a["done"], a["terminated"], g, l)
        assert_close(rec, closed, rollout, "reference recursion vs its closed form")
    assert_close(target, adv + a["value"], rollout, "value_target vs A + V")


@given(rollout=rollouts())
def test_gae_matches_reference_recursion(rollout: Rollout) -> None:
    check_recursion(rollout)


# ----------------------------------------------------------------------------------------------------
# 9. Episode boundaries and env independence
# ----------------------------------------------------------------------------------------------------
@st.composite
def boundary_cases(draw: st.DrawFn) -> tuple[Rollout, int, int, int]:
    """A rollout, an env e, a step k of it, and a seed for the perturbation."""
    rollout = draw(rollouts(max_T=256))
    envs, T = rollout.td.shape
    return rollout, draw(st.integers(0, envs - 1)), draw(st.integers(0, T - 1)), draw(st.integers(0, 2**31 - 1))


def _with(rollout: Rollout, **arrays: Tensor) -> Rollout:
    a = rollout.arrays()
    a.update(arrays)
    return Rollout(rollout.cfg, rollout_td(a["reward"], a["value"], a["next_value"], a["done"], a["terminated"]))


def check_termination_cuts(case: tuple[Rollout, int, int, int], factory: GaeFactory = make_gae) -> None:
    """After a termination at (e, k), changing rewards, values and next values at steps > k of env e (and the
    terminal V(s_{k+1})) leaves A_{<=k} unchanged, exactly; no other env changes at all."""
    rollout, e, k, seed = case
    a = rollout.arrays()
    done, term = a["done"].clone(), a["terminated"].clone()
    done[e, k] = term[e, k] = True
    base = _with(rollout, done=done, terminated=term)
    g = torch.Generator().manual_seed(seed)
    r, v, nv = a["reward"].clone(), a["value"].clone(), a["next_value"].clone()
    for x in (r, v, nv):
        x[e, k + 1:] += torch.randn(x[e, k + 1:].shape, generator=g, dtype=torch.float64) * 10 + 1
    nv[e, k] += 7.0
    moved = _with(base, reward=r, value=v, next_value=nv)
    adv0, _ = run(factory, base)
    adv1, _ = run(factory, moved)
    assert torch.equal(adv0[e, : k + 1], adv1[e, : k + 1]), "advantages before a termination changed"
    others = torch.arange(adv0.shape[0]) != e
    assert torch.equal(adv0[others], adv1[others]), "another env's advantages changed (leak across envs)"


@given(case=boundary_cases())
def test_gae_termination_cuts_the_future(case: tuple[Rollout, int, int, int]) -> None:
    check_termination_cuts(case)


def check_bootstrap(case: tuple[Rollout, int, int, int], factory: GaeFactory = make_gae) -> None:
    """At an episode end at (e, k): a truncation gives A_k = r_k + gamma V(s_{k+1}) - V(s_k) (bootstrap from the
    next observation's value), a termination A_k = r_k - V(s_k)."""
    rollout, e, k, _ = case
    gamma = rollout.cfg.gamma
    a = rollout.arrays()
    for terminal in (False, True):
        done, term = a["done"].clone(), a["terminated"].clone()
        done[e, k], term[e, k] = True, terminal
        adv, _ = run(factory, _with(rollout, done=done, terminated=term))
        want = a["reward"][e, k] - a["value"][e, k] + (0.0 if terminal else gamma * a["next_value"][e, k])
        scale = abs(float(a["reward"][e, k])) + abs(float(a["value"][e, k])) + abs(float(a["next_value"][e, k]))
        kind = "termination" if terminal else "truncation"
        assert abs(float(adv[e, k] - want)) <= 1e-6 * scale + 1e-6, f"{kind}: A_k={float(adv[e, k])}, want {float(want)}"


@given(case=boundary_cases())
def test_gae_truncation_bootstraps_termination_does_not(case: tuple[Rollout, int, int, int]) -> None:
    check_bootstrap(case)


def check_env_independence(case: tuple[Rollout, int, int, int], factory: GaeFactory = make_gae) -> None:
    """Batched envs [envs, T]: each env's advantages equal those of that env run alone, exactly."""
    rollout, _, _, _ = case
    adv, _ = run(factory, rollout)
    for e in range(rollout.td.shape[0]):
        alone, _ = run(factory, Rollout(rollout.cfg, rollout.td[e: e + 1].clone()))
        assert torch.allclose(adv[e: e + 1], alone, rtol=0, atol=0), f"env {e} differs when batched"


@given(case=boundary_cases())
def test_gae_envs_never_leak(case: tuple[Rollout, int, int, int]) -> None:
    check_env_independence(case)
