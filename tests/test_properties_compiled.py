"""The property suite against the compiled loss: what ``--compile on`` runs (torchrl's objective under
``torch.compile``) is held to the same equations as the eager loss, on the same hypothesis cases
(fewer examples, one minibatch size: a compile per new shape costs seconds)."""

from __future__ import annotations

import pytest
import test_pack_properties as P
import test_properties_loss as L
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_pipeline.algo.objectives import make_loss
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.config import Config

pytestmark = pytest.mark.slow   # minutes: the full suite's tier (README: Tests)

EXAMPLES = 4
N = 32      # one minibatch size: later examples reuse the compiled graphs (a new shape is a new trace)


@pytest.fixture(autouse=True)
def _dynamo(monkeypatch):
    """Every loss a check builds is compiled (its comparison losses too: two graphs of one compiler, not
    compiled against eager bit for bit); room for the recompiles of many loss objects; and a count of
    what was compiled."""
    monkeypatch.setattr(L, "make_loss", compiled_loss)
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._dynamo.config.patch(cache_size_limit=256, accumulated_cache_size_limit=4096):
        yield
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0, "nothing was compiled: the test would be vacuous"


def compiled_loss(cfg: Config, agent: Agent):
    """The trainer's loss with its forward compiled (the same object: set_clip_epsilon etc. still apply)."""
    loss = make_loss(cfg, agent)
    loss.forward = torch.compile(loss.forward)
    return loss


@settings(max_examples=EXAMPLES)
@given(case=L.loss_cases(objective="clip", n=N))
def test_compiled_pessimism(case: L.Case) -> None:
    L.check_pessimism(case, compiled_loss)


@settings(max_examples=EXAMPLES)
@given(case=L.loss_cases(objective="clip", n=N))
def test_compiled_clipped_gradients_vanish(case: L.Case) -> None:
    L.check_clipped_gradients(case, compiled_loss)


@pytest.mark.parametrize("objective", ["clip", "kl_fixed", "none"])
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_compiled_reference_values(objective: str, data: st.DataObject) -> None:
    L.check_reference_values(data.draw(L.loss_cases(objective=objective, n=N)), compiled_loss)


@settings(max_examples=EXAMPLES)
@given(case=L.loss_cases(theta_old=True, n=N))
def test_compiled_theta_old(case: L.Case) -> None:
    L.check_theta_old(case, compiled_loss)


# --- packs: the member-wise objective compiled (what a pack runs under --compile on) --------------------
def compiled_objective(agent, members):
    """The pack's objective with its forward compiled (the same object: beta, epsilon and alive stay buffers)."""
    objective = P.MemberObjective(agent, members)
    objective.forward = torch.compile(objective.forward)
    return objective


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=P.pack_cases(max_p=3))
def test_compiled_pack_member_terms_gradients_and_adam_step_are_the_solo_ones(case: P.PackCase) -> None:
    P.check_pack_step(case, compiled_objective, compile=True)


@settings(max_examples=2, deadline=None)
@given(case=P.pack_cases(max_p=3))
def test_compiled_pack_reads_beta_epsilon_and_alive_at_each_call(case: P.PackCase) -> None:
    """The KL rule writes beta, the schedule scales epsilon and a diverged member leaves ``alive`` between calls:
    the compiled objective must see each new value (not the one it was traced with)."""
    agent = P.PackAgent(case.agents)
    eager, compiled = P.MemberObjective(agent, case.members), compiled_objective(agent, case.members)
    for step in range(3):
        alpha = torch.tensor([1.0, 0.5, 0.25][step])
        a, b = eager(case.data, alpha), compiled(case.data, alpha)
        for k in ("loss", "loss_objective", "kl", "clip_fraction"):
            assert torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-5), (step, k)
        for obj in (eager, compiled):
            obj.beta.mul_(3.0).add_(0.5)
            obj.epsilon.mul_(0.5)
            obj.alive[0] = False


@settings(max_examples=2, deadline=None)
@given(case=P.pack_cases(max_p=3))
def test_compiled_adam_step_follows_the_lr_schedule_and_dead_members(case: P.PackCase) -> None:
    """Three steps of the compiled MemberAdam equal the eager one's while the schedule moves the learning rate
    (no recompile for it) and member 0 is dead with a non-finite gradient (its weights stay finite)."""
    first, n = case.members[0], len(case.members)
    packs = [P.PackAgent(case.agents) for _ in range(2)]
    adams = [P.MemberAdam(list(a.parameters()), n, lr=first.lr, eps=first.adam_eps,
                          max_grad_norm=first.max_grad_norm, compile=c) for a, c in zip(packs, (False, True))]
    dead = torch.zeros(n, dtype=torch.bool)
    dead[0] = True
    gen = torch.Generator().manual_seed(0)
    graphs = []
    for step, lr in enumerate([first.lr, 0.5 * first.lr, 0.1 * first.lr]):
        grads = [torch.randn(w.shape, generator=gen) * 3 for w in adams[0].params]
        for g in grads:
            g[0] = float("nan")
        for adam in adams:
            adam.set_lr([lr] * n)
            for w, g in zip(adam.params, grads):
                w.grad = g.clone()
            adam.step(dead=dead)
        graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])
        for a, b in zip(*(adam.params for adam in adams)):
            assert torch.isfinite(b).all(), step
            assert torch.allclose(a.detach(), b.detach(), rtol=1e-5, atol=1e-7), step
    assert graphs[0] == graphs[-1], f"recompiled when the learning rate moved: {graphs}"


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=P.pack_cases(max_p=3).filter(lambda c: isinstance(c.agents[0].policy_head, P.GaussianHead)))
def test_compiled_pack_policy_step_is_the_eager_one(case: P.PackCase) -> None:
    """The collector's compiled per-step call (PackAgent.sample, Gaussian packs) returns what eager act does."""
    pack = P.PackAgent(case.agents)
    envs = min(4, case.data.batch_size[1])
    noise = pack.rollout_noise(1, envs, [torch.Generator().manual_seed(p) for p in range(len(case.agents))])
    obs = torch.cat([case.data[p]["observation"][:envs] for p in range(len(case.agents))])   # [P x E, obs]
    with torch.no_grad():
        eager, compiled = pack.act(obs, noise=noise[0]), torch.compile(pack.sample)(obs, noise[0])
    for k in eager:
        assert torch.allclose(eager[k], compiled[k], rtol=1e-5, atol=1e-6), k
