"""Workarounds for upstream problems, each in one place with the test that shows it.

1. tensordict 0.14 ``TensorDictBase.from_any`` (called by every ``TensorDictModule`` on each tensor
   it writes) probes ``importlib.util.find_spec("pandas")`` before it returns a plain tensor unchanged.
   Where pandas is not installed that probe scans ``sys.path`` (a few ``stat`` calls per entry) every
   time: ~0.1-0.5 ms per output, several per PPO loss call, a quarter or more of the loss's Python
   overhead on a 64-sample MuJoCo minibatch. A plain tensor falls through every branch of ``from_any``
   and comes back as is, so returning it straight away is exactly equivalent.
   Shown by ``tests/test_workarounds.py::test_tensordict_from_any_probes_pandas_per_tensor``.
"""

from __future__ import annotations

import torch
from tensordict import TensorDictBase

_applied = False


def apply() -> None:
    """Install the workarounds (idempotent)."""
    global _applied
    if _applied:
        return
    original = TensorDictBase.from_any.__func__  # classmethod -> function

    def from_any(cls, obj, **kwargs):  # type: ignore[no-untyped-def]
        if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter:
            return obj  # what the original returns for a tensor, minus its pandas probe
        return original(cls, obj, **kwargs)

    from_any.__doc__ = original.__doc__
    TensorDictBase.from_any = classmethod(from_any)  # type: ignore[method-assign]
    _applied = True
