"""The Adam step of a solo run (``ppo_pipeline.algo.optim``, P = 1): torch's clip and Adam, bit for bit.

A pack's per-member clip and P Adams are held equal to each member's solo step in ``test_pack_properties.py``;
here the solo step's own pieces are held to torch's functions they stand for.
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ppo_pipeline.algo.optim import MemberAdam, clip_grad_norm

shapes = st.lists(st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple), min_size=1, max_size=8)


def grads_like(shapes: list[tuple[int, ...]], scale: float, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen) * scale for s in shapes]


@settings(max_examples=200, deadline=None)
@given(shapes=shapes, scale=st.sampled_from([1e-4, 0.05, 1.0, 30.0]), max_norm=st.sampled_from([0.5, 1.0, 40.0]),
       seed=st.integers(0, 2**16))
def test_clip_grad_norm_is_torchs(shapes: list[tuple[int, ...]], scale: float, max_norm: float, seed: int) -> None:
    """Same norm and same clipped gradients as ``torch.nn.utils.clip_grad_norm_``, bit for bit (below the clip,
    where the coefficient is 1, and above it)."""
    ours = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    for a, b, g in zip(ours, theirs, grads_like(shapes, scale, seed)):
        a.grad, b.grad = g.clone(), g.clone()
    norm = clip_grad_norm(ours, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert torch.equal(norm, expected)
    for a, b in zip(ours, theirs):
        assert a.grad is not None and b.grad is not None
        assert torch.equal(a.grad, b.grad)


def test_solo_step_is_torchs_clip_and_adam() -> None:
    """MemberAdam with one member: zero_grad drops the gradients; three steps equal torch's
    ``clip_grad_norm_`` + fused Adam on the same gradients, bit for bit."""
    gen = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=gen) for s in [(64, 11), (64,), (3, 64), (3,)]]
    ours = [torch.nn.Parameter(w.clone()) for w in init]
    theirs = [torch.nn.Parameter(w.clone()) for w in init]
    adam = MemberAdam(ours, 1, lr=3e-4, eps=1e-5, max_grad_norm=0.5)
    torch_adam = torch.optim.Adam(theirs, lr=torch.tensor(3e-4), eps=1e-5, fused=True)
    for step in range(3):
        for a, b in zip(ours, theirs):
            g = torch.randn(a.shape, generator=gen) * (0.01 if step == 1 else 3.0)  # above and below the clip
            a.grad, b.grad = g.clone(), g.clone()
        adam.step()
        torch.nn.utils.clip_grad_norm_(theirs, 0.5)
        torch_adam.step()
        adam.zero_grad()
        assert all(a.grad is None for a in ours)
        for a, b in zip(ours, theirs):
            assert torch.equal(a.detach(), b.detach()), step
