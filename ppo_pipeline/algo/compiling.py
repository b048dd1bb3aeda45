"""The update step, eager or under ``torch.compile``: loss forward (torchrl's objective + Eq. 9) and
backward in one function, compiled once per run when that pays.

``--compile auto`` compiles where the bench shows it pays: the per-minibatch cost of the torchrl loss is
mostly Python overhead for the small MLPs of MuJoCo/classic control (compiled: about half the time per
minibatch), while compiling costs tens of seconds on a CPU (a few with inductor's on-disk cache warm,
``TORCHINDUCTOR_FX_GRAPH_CACHE``, on by default). So ``auto`` is on for MLP nets when a run has at least
``MIN_MINIBATCHES`` minibatch steps and on CUDA, off for the Atari CNN on a CPU (compute-bound: the same
time either way). A compile that fails falls back to eager with one warning line; an error of the
computation itself (a shape error, out of memory) is raised as it is, compiled or not.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from typing import Any

import torch

MIN_MINIBATCHES = 20_000  # below this, compiling (~30 s cold on 2 CPU cores) costs more than it saves
MIN_PACK_MINIBATCHES = 5_000  # a pack's: compiled, CartPole's 33-member step 12.2 -> 7.0 ms (Hopper's 2.8 -> 1.8)


def wanted(
    choice: str, *, minibatch_steps: int, pixels: bool, device: torch.device, recurrent: bool = False, members: int = 1
) -> bool:
    """Whether to compile: ``on``/``off`` as asked; ``auto`` by the rule in the module docstring (and never for
    an LSTM policy, whose sequence replay splits at episode starts: data-dependent shapes). A pack
    (``members`` > 1) saves more per minibatch step, so it pays from ``MIN_PACK_MINIBATCHES``."""
    if choice != "auto":
        return choice == "on"
    if recurrent:
        return False
    if device.type == "cuda":
        return True
    return not pixels and minibatch_steps >= (MIN_MINIBATCHES if members == 1 else MIN_PACK_MINIBATCHES)


def wanted_at_budget(
    cfg: Any, *, pixels: bool, device: torch.device, recurrent: bool = False, members: int = 1
) -> bool:
    """:func:`wanted` for a run (or a pack of ``members``) of config ``cfg`` at its budget."""
    steps = minibatch_steps(cfg.num_updates, cfg.epochs, cfg.batch_size, cfg.minibatch_size)
    return wanted(
        cfg.compile, minibatch_steps=steps, pixels=pixels, device=device, recurrent=recurrent, members=members
    )


def never_at_budget(cfg: Any, device: torch.device, members: int = 1) -> bool:
    """Whether no run of config ``cfg`` (or pack of ``members``) compiles, whatever its nets: :func:`wanted_at_budget`
    for the net most likely to compile (an MLP, not recurrent) says no. Such a process may leave torch's compiler
    stack unimported (:func:`ppo_pipeline.workarounds.defer_compiler_stack`)."""
    return not wanted_at_budget(cfg, pixels=False, device=device, recurrent=False, members=members)


def is_compile_failure(e: BaseException) -> bool:
    """Whether ``e`` says that compiling failed (dynamo could not trace, inductor could not build), as opposed
    to an error of the computation itself (a shape error, out of memory), which dynamo reports as
    ``TorchRuntimeError`` while tracing and eager would raise all the same."""
    from torch._dynamo import exc as dynamo_exc

    if isinstance(e, dynamo_exc.TorchRuntimeError):
        return False
    compile_errors: tuple[type, ...] = (dynamo_exc.TorchDynamoException,)
    try:
        from torch._inductor.exc import InductorError

        compile_errors += (InductorError,)
    except ImportError:
        pass
    return isinstance(e, compile_errors)


class MaybeCompiled:
    """``fn`` under ``torch.compile`` when ``compile``. A call that fails *to compile* warns once (one line)
    and makes it eager for good (``before_retry`` undoes what the failed call may have done); any other
    error, at any call, propagates as it is (it is the computation's, not the compiler's). ``dynamic=False``:
    shapes that never change in a run, traced static (no automatic dynamic shapes after a new shape)."""

    def __init__(
        self,
        fn: Callable,
        compile: bool,
        what: str,
        before_retry: Callable[[], None] | None = None,
        dynamic: bool | None = None,
    ):
        self.eager, self.what, self.before_retry = fn, what, before_retry
        self.fn = torch.compile(fn, dynamic=dynamic) if compile else fn
        self.compiled = compile

    def __call__(self, *args, **kwargs):
        if not self.compiled:
            return self.fn(*args, **kwargs)
        try:
            return self.fn(*args, **kwargs)
        except Exception as e:  # inductor needs a C++ compiler, some ops do not trace ...
            if not is_compile_failure(e):
                raise
            first = " ".join(str(e).split())[:200]
            sys.stderr.write(
                f"warning: torch.compile of the {self.what} failed ({type(e).__name__}: {first}); running it eager\n"
            )
            self.fn, self.compiled = self.eager, False
            if self.before_retry is not None:
                self.before_retry()
            return self.fn(*args, **kwargs)


def minibatch_steps(num_updates: int, epochs: int, batch_size: int, minibatch_size: int) -> int:
    return num_updates * epochs * math.ceil(batch_size / minibatch_size)
