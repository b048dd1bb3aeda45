"""Replay-less minibatch sampler: K epochs over the fresh batch, nothing kept afterwards.

Each epoch draws a fresh permutation of the NT samples and splits it into NT / M minibatches of M,
so every epoch visits every sample exactly once (Algorithm 1: "Optimize surrogate L wrt theta, with K
epochs and minibatch size M <= NT"). No replay buffer: the batch is dropped after the update.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from tensordict import TensorDictBase

from .ranks import ONE, Ranks


class MinibatchSampler:
    """Yield ``epochs`` x (N / minibatch_size) minibatches of a batch of N samples.

    In: a TensorDict of any batch shape (flattened to [N]). Out: TensorDicts of shape [minibatch_size].

    Over W ranks (``ranks``; the batch this rank's [E / W, T] share, rows ``r N / W .. (r+1) N / W - 1`` of the
    one-process batch [E, T] flattened): the one-process permutation of the N W rows, and of each minibatch the
    rows this rank holds (their number varies from minibatch to minibatch, 0 included); with
    ``normalize_advantage`` their ``advantage`` standardized over the whole minibatch as torchrl's loss does it
    (mean, unbiased std clamped at 1e-6), from moments all-reduced once per epoch for all its minibatches.
    """

    def __init__(
        self,
        epochs: int,
        minibatch_size: int,
        generator: torch.Generator | None = None,
        ranks: Ranks = ONE,
        normalize_advantage: bool = False,
    ):
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.generator = generator
        self.ranks, self.normalize_advantage = ranks, normalize_advantage

    def permutations(self, n: int) -> Iterator[torch.Tensor]:
        """One permutation of range(n) per epoch."""
        if n % self.minibatch_size:
            raise ValueError(f"minibatch_size={self.minibatch_size} does not divide the batch of {n}")
        for _ in range(self.epochs):
            yield torch.randperm(n, generator=self.generator)

    def indices(self, n: int) -> Iterator[torch.Tensor]:
        """The index tensors alone: each epoch's permutation split into minibatches."""
        for perm in self.permutations(n):
            yield from perm.split(self.minibatch_size)

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        """Each epoch gathers the batch in its permuted order once, then yields contiguous slices of it
        (the same minibatches as indexing each one, with one TensorDict gather per epoch, not per minibatch)."""
        flat = batch.reshape(-1)
        if self.ranks.many:
            if (flat.shape[0] * self.ranks.world) % self.minibatch_size:
                raise ValueError(
                    f"minibatch_size={self.minibatch_size} does not divide the batch of {flat.shape[0] * self.ranks.world}"
                )
            yield from self._ranked(flat, self.minibatch_size)
            return
        for perm in self.permutations(flat.shape[0]):
            yield from flat[perm.to(flat.device)].split(self.minibatch_size)

    def _ranked(self, units: TensorDictBase, per: int) -> Iterator[TensorDictBase]:
        """This rank's share of the minibatches: ``units`` [n, ...] its rows (or, for sequences, its envs), ``per``
        units to a minibatch; each epoch the one-process permutation of the n W units of all ranks."""
        n = units.shape[0]
        lo = self.ranks.rank * n
        adv = units["advantage"].reshape(n, -1).double() if self.normalize_advantage else None
        for _ in range(self.epochs):
            perm = torch.randperm(n * self.ranks.world, generator=self.generator)
            k = len(perm) // per
            held = (perm >= lo) & (perm < lo + n)
            mine, mbs = perm[held] - lo, (torch.arange(len(perm)) // per)[held]  # this rank's units, their minibatch
            if adv is not None:  # every minibatch's (n, sum, sum of squares) over all ranks: one all-reduce
                x = adv[mine]
                stats = torch.zeros(3, k, dtype=torch.float64)
                for i, v in enumerate((torch.full((len(mine),), float(x.shape[1])), x.sum(1), (x * x).sum(1))):
                    stats[i].index_add_(0, mbs, v.to(torch.float64))
                count, total, squares = self.ranks.sum_(stats)
                mean = total / count
                std = ((squares - count * mean**2) / (count - 1)).clamp_min(0).sqrt().clamp_min(1e-6)
            for i, part in enumerate(mine.split(torch.bincount(mbs, minlength=k).tolist())):
                mb = units[part.to(units.device)]
                if adv is not None and len(part):
                    a = mb["advantage"]
                    mb["advantage"] = ((a.double() - mean[i]) / std[i]).to(a.dtype)
                yield mb


class SequenceSampler(MinibatchSampler):
    """For a recurrent policy: K epochs of minibatches of whole env trajectories (CleanRL's
    ``ppo_atari_lstm.py`` does the same): each epoch permutes the N envs and yields [N * M / (N T), T] blocks, so
    the loss replays every sequence from its stored initial state over all T steps (truncated BPTT over T).

    In: a TensorDict [N, T]. Out: TensorDicts [minibatch_size / T, T] (over W ranks: this rank's envs of each).
    """

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        envs, steps = batch.batch_size[0], batch.batch_size[-1]
        per = max(self.minibatch_size // steps, 1)
        if self.ranks.many:  # this rank's envs of each minibatch of whole trajectories
            yield from self._ranked(batch, per)
            return
        for _ in range(self.epochs):
            perm = torch.randperm(envs, generator=self.generator).to(batch.device)
            yield from batch[perm].split(per, dim=0)


class MemberSampler:
    """For a pack of P members: K epochs of [P, M] minibatches, member p's rows in the order of its own permutation
    drawn from ``generators[p]`` each epoch (the draws of its solo run's :class:`MinibatchSampler`), so a member's
    minibatches do not depend on P.

    In: a TensorDict [P, E, T]. Out: TensorDicts [P, minibatch_size].
    """

    def __init__(self, epochs: int, minibatch_size: int, generators: Sequence[torch.Generator]):
        self.epochs, self.minibatch_size, self.generators = epochs, minibatch_size, generators

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        p = batch.batch_size[0]
        flat = batch.reshape(p, -1)
        n = flat.batch_size[1]
        rows = torch.arange(p, device=flat.device).unsqueeze(1)
        for _ in range(self.epochs):
            perm = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(flat.device)
            yield from flat[rows, perm].split(self.minibatch_size, dim=1)
