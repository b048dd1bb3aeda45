"""Replay-less minibatch sampler: K epochs over the fresh batch, nothing kept afterwards.

Each epoch draws a fresh permutation of the NT samples and splits it into NT / M minibatches of M,
so every epoch visits every sample exactly once (Algorithm 1: "Optimize surrogate L wrt theta, with K
epochs and minibatch size M <= NT"). No replay buffer: the batch is dropped after the update.
"""

from __future__ import annotations

from typing import Iterator

import torch
from tensordict import TensorDictBase


class MinibatchSampler:
    """Yield ``epochs`` x (N / minibatch_size) minibatches of a batch of N samples.

    In: a TensorDict of any batch shape (flattened to [N]). Out: TensorDicts of shape [minibatch_size].
    """

    def __init__(self, epochs: int, minibatch_size: int, generator: torch.Generator | None = None):
        self.epochs = epochs
        self.minibatch_size = minibatch_size
        self.generator = generator

    def indices(self, n: int) -> Iterator[torch.Tensor]:
        """The index tensors alone: one permutation of range(n) per epoch, split into minibatches."""
        if n % self.minibatch_size:
            raise ValueError(f"minibatch_size={self.minibatch_size} does not divide the batch of {n}")
        for _ in range(self.epochs):
            yield from torch.randperm(n, generator=self.generator).split(self.minibatch_size)

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        flat = batch.reshape(-1)
        for idx in self.indices(flat.shape[0]):
            yield flat[idx.to(flat.device)]
