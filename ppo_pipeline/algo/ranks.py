"""Ranks: one run over W processes (torch.distributed), data-parallel, the same run as one process.

A one-process run is a run of one rank (:data:`ONE`: every collective below is the identity). With W ranks:

=====================================  =================================================================
stage                                  what rank r does (E envs in all, E / W each)
=====================================  =================================================================
envs                                   steps envs ``r E/W .. (r+1) E/W - 1``, seeded as those envs of
                                       the one-process run (:attr:`Ranks.envs`)
action draws                           from the run's generator as if for all E envs, keeping its rows
                                       (:func:`ppo_pipeline.algo.distributions.sample` with ``rows``)
observation / reward statistics        each env step's batch moments combined over ranks
                                       (:meth:`Ranks.moments`: one all-gather of (n, mean, M2))
minibatches                            the one-process permutation of the E T rows (same generator);
                                       rank r takes the rows of each minibatch that it holds
advantage normalization                over the whole minibatch: all-reduced (n, sum, sum of squares)
gradient                               local sum over its rows / M, all-reduced (summed) before the
                                       grad-norm clip; Adam then steps alike on every rank
mean KL, explained variance, terms     all-reduced sums
=====================================  =================================================================

``--rank-learn replicated`` (:meth:`Ranks.gather_envs`) shares the update differently: after GAE each rank's
envs of the batch are all-gathered once, and every rank takes every minibatch step of the one-process run itself
(the same permutation, the same full minibatches, so the same weights): no collective per minibatch, where a small
network's step is latency-bound; ``sharded`` (above) splits each minibatch's rows, the learning's compute shared.
``lead`` gathers the batch as ``replicated`` does, but only rank 0 takes the steps, on every core of its node (the
other ranks wait), then sends its weights to the others (:meth:`Ranks.from_lead_`, one broadcast per update): on
CPU ranks of one node the update is then the one-process run's, and only the collection is shared.

A pack of P members (:mod:`ppo_pipeline.pack`) over W ranks is split the same way: rank r holds envs
``r E/W .. (r+1) E/W - 1`` of every member, and each row above is per member (its generator, its permutation,
its statistics and moments, its mean KL: a leading member axis on what is combined).

Sharded and replicated, weights never travel after the start: identical gradients and identical Adam steps keep
the replicas equal (:meth:`Ranks.check_same` compares them, as baselines' ``MpiAdam`` does every so often). Exact means equal to
float tolerance: the sums of the one-process run are split and added in another order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import batch as keys


@dataclass(frozen=True)
class RowShare:
    """Rows ``start .. stop - 1`` of ``total``: this rank's envs of the run's env axis."""

    start: int
    stop: int
    total: int

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """[stop - start, ...] -> [total, ...]: the rows in place, the others copies of the first (valid parameters
        of any distribution, drawn from and thrown away)."""
        full = x[:1].expand(self.total, *x.shape[1:]).clone()
        full[self.start : self.stop] = x
        return full

    def take(self, x: torch.Tensor, dim: int = 0) -> torch.Tensor:
        return x.narrow(dim, self.start, self.stop - self.start)


class Ranks:
    """The W processes of one run over torch.distributed's default group (W = 1: the one process, no collective).

    ``rank``, ``world``; :attr:`envs` (this rank's share of ``num_envs``); collectives on tensors of the run's
    device (gloo: CPU, nccl: CUDA)."""

    def __init__(
        self,
        rank: int = 0,
        world: int = 1,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        stats_every: str = "step",
    ):
        if world > 1 and num_envs % world:
            raise ValueError(f"{world} ranks do not divide num_envs={num_envs}")
        self.rank, self.world, self.num_envs, self.device = rank, world, num_envs, torch.device(device)
        self.seconds = 0.0  # wall time this process spent in collectives (waiting for the other ranks included)
        self.stats_every = stats_every  # "step" (exact) or "update": when the running statistics are combined
        per = num_envs // world
        self.envs = RowShare(rank * per, (rank + 1) * per, num_envs)

    @classmethod
    def of_process_group(cls, num_envs: int, device: torch.device | str = "cpu", stats_every: str = "step") -> Ranks:
        """This process's place in the initialized default process group."""
        import torch.distributed as dist

        return cls(dist.get_rank(), dist.get_world_size(), num_envs, device, stats_every)

    @property
    def per_update_stats(self) -> bool:
        """Running statistics move with this rank's envs during an update and are combined at its end."""
        return self.many and self.stats_every == "update"

    @property
    def many(self) -> bool:
        return self.world > 1

    @property
    def lead(self) -> bool:
        """Rank 0: the one that writes the run's directory."""
        return self.rank == 0

    # --- collectives (identity at W = 1) -----------------------------------------------------------------------
    def sum_(self, x: torch.Tensor) -> torch.Tensor:
        """All-reduce ``x`` in place (sum over ranks); returns it. (It travels on the run's device: nccl takes CUDA
        tensors only.)"""
        if self.many:
            import torch.distributed as dist

            t0 = time.perf_counter()
            y = x if x.device == self.device else x.to(self.device)
            dist.all_reduce(y)
            if y is not x:
                x.copy_(y)
            self.seconds += time.perf_counter() - t0
        return x

    def sum_flat_(self, tensors: Sequence[torch.Tensor]) -> None:
        """All-reduce several tensors in place as one flat buffer (one collective)."""
        if not self.many or not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        self.sum_(flat)
        i = 0
        for t in tensors:
            t.copy_(flat[i : i + t.numel()].view_as(t))
            i += t.numel()

    def moments(self, mean: np.ndarray, var: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Batch moments (mean, var, n) of the rows of every rank, from each rank's own (one all-gather; float64):
        the parallel-variance combination of Chan et al., what one process's ``x.mean(0)``, ``x.var(0)`` over all
        rows give."""
        if not self.many:
            return mean, var, count
        import torch.distributed as dist

        shape = np.shape(mean)
        mine = torch.cat(
            [
                torch.tensor([float(count)], dtype=torch.float64),
                torch.as_tensor(np.asarray(mean, dtype=np.float64)).reshape(-1),
                torch.as_tensor(np.asarray(var, dtype=np.float64) * count).reshape(-1),
            ]
        ).to(self.device)
        parts = [torch.empty_like(mine) for _ in range(self.world)]
        t0 = time.perf_counter()
        dist.all_gather(parts, mine)
        self.seconds += time.perf_counter() - t0
        k = (mine.numel() - 1) // 2
        parts = [p.cpu() for p in parts]
        n = torch.stack([p[0] for p in parts])  # [W]
        means = torch.stack([p[1 : 1 + k] for p in parts])  # [W, k]
        m2 = torch.stack([p[1 + k :] for p in parts])
        total = n.sum()
        g_mean = (n[:, None] * means).sum(0) / total
        g_m2 = (m2 + n[:, None] * (means - g_mean) ** 2).sum(0)
        return g_mean.numpy().reshape(shape), (g_m2 / total).numpy().reshape(shape), int(total)

    def gather_envs(self, batch: Any, members: int = 1) -> Any:
        """The update's batch of every rank's envs, on every rank (``--rank-learn replicated``): this rank's
        [P x E / W, T] (member-major) -> the one-process run's [P x E, T], env i of each member in its place (an
        all-gather per key)."""
        if not self.many:
            return batch
        import torch.distributed as dist

        t0 = time.perf_counter()

        def gather(x: torch.Tensor) -> torch.Tensor:
            y = x.to(self.device, torch.uint8 if x.dtype == torch.bool else x.dtype).contiguous()
            parts = [torch.empty_like(y) for _ in range(self.world)]
            dist.all_gather(parts, y)
            tail = x.shape[1:]
            full = torch.cat([q.to(x.device).reshape(members, -1, *tail) for q in parts], 1)
            return full.reshape(-1, *tail).to(x.dtype)

        size = [batch.batch_size[0] * self.world, *batch.batch_size[1:]]
        out = batch.apply(gather, batch_size=size)
        self.seconds += time.perf_counter() - t0
        return out

    def from_lead_(self, tensors: Sequence[torch.Tensor], objects: list[Any]) -> None:
        """Rank 0's ``tensors`` (copied in place into this rank's) and ``objects`` (a list of picklables, replaced
        in place) on every rank: one broadcast of the tensors as a flat buffer, one of the objects
        (``--rank-learn lead``)."""
        if not self.many:
            return
        import torch.distributed as dist

        t0 = time.perf_counter()
        with torch.no_grad():
            flat = torch.cat([t.detach().reshape(-1) for t in tensors]).to(self.device)
            dist.broadcast(flat, src=0)
            i = 0
            for t in tensors:
                t.copy_(flat[i : i + t.numel()].view_as(t))
                i += t.numel()
        dist.broadcast_object_list(objects, src=0)
        self.seconds += time.perf_counter() - t0

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.many:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        t0 = time.perf_counter()
        dist.all_gather_object(out, obj)
        self.seconds += time.perf_counter() - t0
        return out

    def check_same(self, params: Sequence[torch.Tensor]) -> None:
        """Raise when the replicas' weights differ (a checksum per rank compared)."""
        if not self.many:
            return
        with torch.no_grad():
            s = torch.stack([p.double().sum() + (p.double() ** 2).sum() for p in params]).sum().reshape(1)
        sums = self.gather_objects(float(s))
        if any(x != sums[0] for x in sums):
            raise RuntimeError(f"the ranks' weights differ (checksums {sums})")


ONE = Ranks()  # the one-process run

REPLICATE_BELOW_ROWS = 1024  # --rank-learn auto: a minibatch share under this many rows per rank is latency-bound


def rank_learning(cfg: Any, ranks: Ranks, pixels: bool) -> str:
    """Who takes the update's minibatch steps (``--rank-learn``): ``sharded``, ``replicated`` or ``lead`` (the one
    process: ``one``). auto: ``lead`` for CPU ranks on one node (its cores are all the ranks': the one-process
    update on every core, where splitting it across the ranks' threads adds collectives and takes nothing off the
    compute); elsewhere (GPUs, several nodes) ``replicated`` for a vector-observation network whose minibatch share
    per rank is under :data:`REPLICATE_BELOW_ROWS` rows, where the per-minibatch gradient all-reduce costs more than
    the compute it shares, and ``sharded`` for a CNN's or a wide minibatch's compute, worth sharing."""
    if not ranks.many:
        return "one"
    if cfg.rank_learn != "auto":
        return str(cfg.rank_learn)
    one_node = cfg.nodes == 1 and int(os.environ.get("LOCAL_WORLD_SIZE", ranks.world)) == ranks.world
    if ranks.device.type == "cpu" and one_node:
        return "lead"
    return "replicated" if not pixels and cfg.minibatch_size // ranks.world < REPLICATE_BELOW_ROWS else "sharded"


def ranked_step(
    objective: Any, params: Sequence[torch.Tensor], ranks: Ranks, mb: Any, batch: Any, cfg: Any
) -> dict[str, torch.Tensor]:
    """One rank's part of a minibatch step of a run over W ranks (its rows of the minibatch, their advantage
    already normalized over the whole minibatch by :class:`~.sampler.MinibatchSampler`): the loss's gradient over
    its n rows weighted n / M, then the gradients and the terms summed over the ranks (one all-reduce): the
    one-process minibatch's mean gradient and terms, on every rank. A rank that holds no row of the minibatch
    steps one row weighted 0 (the same graph, nothing added). A pack's minibatch [P, m] carries its rows' weights
    (``row_weight``: :class:`~.sampler.MemberSampler`), its terms [P] already the weighted sums."""
    n, M = mb.batch_size.numel(), cfg.minibatch_size  # rows (an LSTM's minibatch: whole trajectories [envs, T])
    if n == 0:
        mb = batch[:1] if mb.batch_dims == 2 else batch.reshape(-1)[:1]
    terms = objective.step(mb)
    weight = 1.0 if keys.ROW_WEIGHT in mb.keys() else n / M  # a pack's minibatch weighs its rows itself
    grads = [p.grad for p in params if p.grad is not None]
    names = sorted(terms)
    flat = torch.cat([g.reshape(-1) for g in grads] + [terms[k].reshape(-1).to(grads[0].dtype) for k in names])
    ranks.sum_(flat.mul_(weight))
    out = {}
    i = 0
    for g in grads:
        g.copy_(flat[i : i + g.numel()].view_as(g))
        i += g.numel()
    for k in names:  # a term per member (a pack's [P]), or the solo run's one
        out[k] = flat[i : i + terms[k].numel()].clone()
        i += terms[k].numel()
    return out
