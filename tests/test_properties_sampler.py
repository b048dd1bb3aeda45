"""Property-based proof of the minibatch sampler's invariants (issue invariant 10).

Algorithm 1: "Optimize surrogate L wrt theta, with K epochs and minibatch size M <= NT". The subject is
:class:`ppo_pipeline.algo.sampler.MinibatchSampler` on batches shaped like the collector's ([envs, T]) carrying a
sample id, for any M dividing NT (NT <= 4096) and K epochs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from hypothesis import given
from hypothesis import strategies as st
from tensordict import TensorDict

from ppo_pipeline.algo.sampler import MinibatchSampler

SamplerFactory = Callable[[int, int, torch.Generator], MinibatchSampler]


@st.composite
def sampler_cases(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """(envs, T, minibatch_size, epochs, seed) with minibatch_size dividing envs*T <= 4096."""
    envs = draw(st.integers(1, 16))
    T = draw(st.integers(1, 4096 // envs))
    n = envs * T
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return envs, T, draw(st.sampled_from(divisors)), draw(st.integers(1, 10)), draw(st.integers(0, 2**31 - 1))


def check_sampler(case: tuple[int, int, int, int, int], factory: SamplerFactory = MinibatchSampler) -> None:
    """Every epoch visits every sample exactly once; its minibatches partition the batch; K epochs are K passes
    of NT/M minibatches of M; no sample appears twice in a minibatch; each minibatch carries the sample's data."""
    envs, T, m, epochs, seed = case
    n = envs * T
    ids = torch.arange(n).reshape(envs, T)
    batch = TensorDict({"id": ids, "x": ids.double() * 2 + 1, "next": {"y": -ids.unsqueeze(-1)}}, [envs, T])
    sampler = factory(epochs, m, torch.Generator().manual_seed(seed))
    mbs = list(sampler(batch))
    per_epoch = n // m
    assert len(mbs) == epochs * per_epoch, f"{len(mbs)} minibatches, want {epochs} x {per_epoch}"
    for epoch in range(epochs):
        seen = []
        for mb in mbs[epoch * per_epoch:(epoch + 1) * per_epoch]:
            assert mb.shape == torch.Size([m]), f"minibatch of shape {tuple(mb.shape)}, want [{m}]"
            idx = mb["id"]
            assert idx.unique().numel() == m, "a sample appears twice in a minibatch"
            assert torch.equal(mb["x"], idx.double() * 2 + 1) and torch.equal(mb["next", "y"], -idx.unsqueeze(-1)), \
                "minibatch entries do not belong to the sample"
            seen.append(idx)
        assert torch.equal(torch.cat(seen).sort().values, torch.arange(n)), f"epoch {epoch} is not one pass"
    # the index path the trainer can use on its own agrees with the TensorDict path
    idx_only = list(factory(epochs, m, torch.Generator().manual_seed(seed)).indices(n))
    assert [i.tolist() for i in idx_only] == [mb["id"].tolist() for mb in mbs]


@given(case=sampler_cases())
def test_sampler_partitions_every_epoch(case: tuple[int, int, int, int, int]) -> None:
    check_sampler(case)
