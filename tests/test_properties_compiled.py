"""The property suite against the compiled loss: what ``--compile on`` runs (torchrl's objective under
``torch.compile``) is held to the same equations as the eager loss, on the same hypothesis cases
(fewer examples, one minibatch size: a compile per new shape costs seconds)."""

from __future__ import annotations

import pytest
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
