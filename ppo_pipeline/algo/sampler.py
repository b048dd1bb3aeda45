"""Replay-less minibatch sampler: K epochs over the fresh batch, nothing kept afterwards.

Each epoch draws a fresh permutation of the NT samples and splits it into NT / M minibatches of M,
so every epoch visits every sample exactly once (Algorithm 1: "Optimize surrogate L wrt theta, with K
epochs and minibatch size M <= NT"). No replay buffer: the batch is dropped after the update.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from tensordict import TensorDictBase

from .. import batch as keys
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
        adv = units["advantage"].reshape(1, n, -1).double() if self.normalize_advantage else None
        for _ in range(self.epochs):
            mine, mbs = held_rows(torch.randperm(n * self.ranks.world, generator=self.generator), self.ranks, n, per)
            k = n * self.ranks.world // per
            mean, std = minibatch_moments(self.ranks, adv, [mine], [mbs], k) if adv is not None else (None, None)
            for i, part in enumerate(mine.split(torch.bincount(mbs, minlength=k).tolist())):
                mb = units[part.to(units.device)]
                if mean is not None and std is not None and len(part):
                    a = mb["advantage"]
                    mb["advantage"] = ((a.double() - mean[0, i]) / std[0, i]).to(a.dtype)
                yield mb


def held_rows(perm: torch.Tensor, ranks: Ranks, n: int, per: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Of the one-process permutation ``perm`` of the n W rows of all ranks (rank r's rows ``r n .. (r+1) n - 1``,
    ``per`` to a minibatch): the rows this rank holds (its indices, in the permutation's order) and their
    minibatch."""
    lo = ranks.rank * n
    held = (perm >= lo) & (perm < lo + n)
    return perm[held] - lo, (torch.arange(len(perm)) // per)[held]


def minibatch_moments(
    ranks: Ranks, adv: torch.Tensor, mine: Sequence[torch.Tensor], mbs: Sequence[torch.Tensor], k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std [P, k] of the advantage of each member's k minibatches over all ranks (``adv`` [P, n, d] this
    rank's rows, float64; ``mine[p]``, ``mbs[p]``: :func:`held_rows` of member p): every (member, minibatch)'s
    (n, sum, sum of squares) all-reduced at once; the std unbiased and clamped at 1e-6, as torchrl's loss."""
    stats = torch.zeros(3, len(mine), k, dtype=torch.float64)
    for p, (rows, mb) in enumerate(zip(mine, mbs)):
        x = adv[p][rows]
        for i, v in enumerate((torch.full((len(rows),), float(x.shape[1])), x.sum(1), (x * x).sum(1))):
            stats[i, p].index_add_(0, mb, v.to(torch.float64))
    count, total, squares = ranks.sum_(stats)
    mean = total / count
    return mean, ((squares - count * mean**2) / (count - 1)).clamp_min(0).sqrt().clamp_min(1e-6)


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

    Over W ranks (``ranks``; the batch this rank's [P, E / W, T] share): each member's one-process permutation, and
    of each minibatch the rows this rank holds of every member, as :class:`MinibatchSampler` takes them; their
    number differs from member to member, so each member's are padded to the most held (with its first row) and
    the minibatch [P, m] carries ``row_weight`` [P, m]: 1 / M for a held row, 0 for a pad (the objective's sums
    over the ranks are then the one-process means); with ``normalize_advantage`` the advantage standardized over
    each member's whole minibatch (:func:`minibatch_moments`).
    """

    def __init__(
        self,
        epochs: int,
        minibatch_size: int,
        generators: Sequence[torch.Generator],
        ranks: Ranks = ONE,
        normalize_advantage: bool = False,
    ):
        self.epochs, self.minibatch_size, self.generators = epochs, minibatch_size, generators
        self.ranks, self.normalize_advantage = ranks, normalize_advantage

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        p = batch.batch_size[0]
        flat = batch.reshape(p, -1)
        n = flat.batch_size[1]
        if self.ranks.many:
            yield from self._ranked(flat)
            return
        rows = torch.arange(p, device=flat.device).unsqueeze(1)
        for _ in range(self.epochs):
            perm = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(flat.device)
            yield from flat[rows, perm].split(self.minibatch_size, dim=1)

    def _ranked(self, flat: TensorDictBase) -> Iterator[TensorDictBase]:
        P, n = flat.batch_size
        M, total = self.minibatch_size, n * self.ranks.world
        if total % M:
            raise ValueError(f"minibatch_size={M} does not divide the batch of {total}")
        k = total // M
        adv = flat[keys.ADVANTAGE].reshape(P, n, -1).double() if self.normalize_advantage else None
        members = torch.arange(P, device=flat.device).unsqueeze(1)
        for _ in range(self.epochs):
            held = [held_rows(torch.randperm(total, generator=g), self.ranks, n, M) for g in self.generators]
            mine, mbs = [h[0] for h in held], [h[1] for h in held]
            mean, std = minibatch_moments(self.ranks, adv, mine, mbs, k) if adv is not None else (None, None)
            parts = [r.split(torch.bincount(b, minlength=k).tolist()) for r, b in zip(mine, mbs)]
            for i in range(k):
                rows = [part[i] for part in parts]
                m = max(1, *(len(r) for r in rows))
                index = torch.stack([torch.cat([r, r.new_zeros(m - len(r))]) for r in rows]).to(flat.device)
                mb = flat[members, index]
                weight = torch.stack([(torch.arange(m) < len(r)).float() / M for r in rows])
                mb[keys.ROW_WEIGHT] = weight.to(flat.device)
                if mean is not None and std is not None:
                    a = mb[keys.ADVANTAGE]
                    mb[keys.ADVANTAGE] = ((a.double() - mean[:, i, None, None]) / std[:, i, None, None]).to(a.dtype)
                yield mb
