"""Workarounds for upstream problems, each in one place with the test that shows it.

1. tensordict 0.14 ``TensorDictBase.from_any`` (called by every ``TensorDictModule`` on each tensor
   it writes) probes ``importlib.util.find_spec("pandas")`` before it returns a plain tensor unchanged.
   Where pandas is not installed that probe scans ``sys.path`` (a few ``stat`` calls per entry) every
   time: ~0.1-0.5 ms per output, several per PPO loss call, a quarter or more of the loss's Python
   overhead on a 64-sample MuJoCo minibatch. A plain tensor falls through every branch of ``from_any``
   and comes back as is, so returning it straight away is exactly equivalent.
   Shown by ``tests/test_workarounds.py::test_tensordict_from_any_probes_pandas_per_tensor``.
   In place only inside :func:`scoped`, which :meth:`ppo_pipeline.algo.ppo.PPO.update` (collection, GAE, the
   loss: where the package's ``TensorDictModule`` calls are) runs in; outside it, ``from_any`` is tensordict's.
2. torchrl 0.14 ``DMControlEnv(domain, task, from_pixels=True, render_kwargs=...)`` hands ``render_kwargs``
   to the DMControl *task* (``TypeError: run() got an unexpected keyword argument 'render_kwargs'``), so
   pixel observations can only come at dm_control's default 240x320. :func:`dmc_pixels_env` loads the
   task itself and gives it to ``DMControlWrapper``, whose ``render_kwargs`` do reach the renderer.
   Shown by ``tests/test_workarounds.py::test_dmcontrolenv_drops_render_kwargs_into_the_task``.
3. torch 2.13's dynamo logs a WARNING, "Profiler record function <class ...record_function> will be
   ignored", when it traces ``torch.optim.Optimizer.step`` (whose profiling hook opens a
   ``record_function``): every pack that compiles its Adam step (:mod:`ppo_pipeline.pack.optim`) printed
   that line on stderr, though nothing is wrong (only the profiler's label is left out of the compiled
   graph). :func:`scoped` drops that one message (a filter on the logger that emits it) while
   ``PPO.update``, where the package compiles, runs; every other dynamo warning still shows.
   Shown by ``tests/test_workarounds.py::test_dynamo_warns_when_it_compiles_optimizer_step``.
4. pybullet 3.2.7 prints from C: ``pybullet build time: ...`` when it is imported (on stdout, or stderr once
   torch is loaded) and ``argv[0]=`` each time an env connects its physics server (its first reset), i.e. 33
   lines for a run of 32 Bullet envs and its evaluation, in the user's terminal and in anything that reads a
   command's output. :func:`c_output_silenced` sends file descriptors 1 and 2 to ``/dev/null`` around those two
   calls (the import in
   :func:`ppo_pipeline.envs.ids.register_bullet`, the reset in :class:`ppo_pipeline.envs.gymnasium.QuietReset`).
   Shown by ``tests/test_workarounds.py::test_pybullet_prints_on_import_and_connect``.
5. torch 2.13's exporters warn about their own internals, not about anything the exported module does:
   ``torch.export`` of an ``nn.LSTM`` warns "The tensor attributes self.lstm._flat_weights[0], ... were assigned
   during export" (the LSTM refreshes its cached weight list when export swaps its parameters; the program
   reads the parameters, not that list), and ``torch.onnx.export(..., dynamo=True)`` warns the FutureWarning
   "`isinstance(treespec, LeafSpec)` is deprecated" (its own ``deepcopy`` of the program's input spec) and logs
   "torchvision is not installed. Skipping torchvision::nms" (and 3 more ops). :func:`export_notices_dropped`
   drops exactly those messages around :mod:`ppo_pipeline.tools.exported`'s two export calls; any other warning
   still shows. Shown by ``tests/test_workarounds.py::test_exporters_warn_about_their_internals``.
6. torchrl 0.14's ``torchrl.modules.distributions.continuous`` calls
   ``torch.distributions.Distribution.set_default_validate_args(False)`` when it is imported (by
   ``torchrl.modules``, ``.objectives``, ``.data``, ``.envs``, ``.collectors``): every distribution of the process,
   a user's too, stops checking its arguments. Each torchrl import of the package sits in
   :func:`distribution_default_kept`, which puts the process default back as it was (once torchrl is imported the
   import runs no code, and the default is whatever the user set). The package's own distributions never check
   theirs (:mod:`ppo_pipeline.algo.distributions`). Shown by
   ``tests/test_workarounds.py::test_torchrl_import_turns_off_every_distributions_checks``.

Importing the package changes nothing global (``tests/test_workarounds.py::test_importing_changes_nothing_global``):
1 and 3 are in place inside :func:`scoped` only, or for the rest of a process that calls :func:`apply` (the package
does in the processes it starts for itself: torchrl collector workers).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import sys
import warnings
from typing import Any, Iterator

import torch
from tensordict import TensorDictBase

DYNAMO_CTX_LOGGER = "torch._dynamo.variables.ctx_manager"


def _without_pandas_probe(original: Any) -> Any:
    """``from_any`` that returns a plain tensor (or parameter) at once, ``original`` (a function) for the rest."""
    def from_any(cls, obj, **kwargs):  # type: ignore[no-untyped-def]
        if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter:
            return obj  # what the original returns for a tensor, minus its pandas probe
        return original(cls, obj, **kwargs)

    from_any.__doc__ = original.__doc__
    return classmethod(from_any)


_UPSTREAM_FROM_ANY = TensorDictBase.__dict__["from_any"]     # read only: tensordict's classmethod
_FROM_ANY = _without_pandas_probe(_UPSTREAM_FROM_ANY.__func__)  # one object, so compiled code's guards hold


def _install() -> bool:
    """Put 1 and 3 in place; False (and nothing done) where they are already (nested, :func:`apply`) or where
    something else replaced ``from_any``."""
    if TensorDictBase.__dict__.get("from_any") is not _UPSTREAM_FROM_ANY:
        return False
    TensorDictBase.from_any = _FROM_ANY  # type: ignore[method-assign]
    logging.getLogger(DYNAMO_CTX_LOGGER).addFilter(_not_record_function_notice)
    return True


@contextlib.contextmanager
def scoped() -> Iterator[None]:
    """Workarounds 1 and 3 inside, upstream's behaviour again after (nests; also a decorator)."""
    mine = _install()
    try:
        yield
    finally:
        if mine:
            TensorDictBase.from_any = _UPSTREAM_FROM_ANY  # type: ignore[method-assign]
            logging.getLogger(DYNAMO_CTX_LOGGER).removeFilter(_not_record_function_notice)


def apply() -> None:
    """Workarounds 1 and 3 for the rest of the process (idempotent): for processes that only run the package."""
    _install()


def _not_record_function_notice(record: logging.LogRecord) -> bool:
    """False for dynamo's "Profiler record function ... will be ignored" (workaround 3)."""
    return not str(record.msg).startswith("Profiler record function")


@contextlib.contextmanager
def distribution_default_kept() -> Iterator[None]:
    """``torch.distributions.Distribution``'s default ``validate_args`` after the block as before it (workaround 5):
    wrap each import of torchrl in it."""
    default = bool(torch.distributions.Distribution._validate_args)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(default)


def dmc_pixels_env(domain: str, task: str, height: int, width: int) -> Any:
    """DMControl ``domain``/``task`` observing ``uint8 [height, width, 3]`` frames under ``"pixels"``
    (camera 0), as ``DMControlEnv(..., from_pixels=True, pixels_only=True, render_kwargs=...)`` would."""
    from dm_control import suite
    with distribution_default_kept():
        from torchrl.envs.libs.dm_control import DMControlWrapper

    return DMControlWrapper(suite.load(domain, task), from_pixels=True, pixels_only=True,
                            render_kwargs={"height": height, "width": width, "camera_id": 0})


@contextlib.contextmanager
def c_output_silenced() -> Iterator[None]:
    """File descriptors 1 and 2 go to ``/dev/null`` inside (workaround 4): what C code prints is dropped (Python
    exceptions still propagate); Python's ``sys.stdout``/``sys.stderr`` are flushed first, so nothing of ours is
    lost or reordered."""
    sys.stdout.flush()
    sys.stderr.flush()
    libc = ctypes.CDLL(None)
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            libc.fflush(None)              # what the C code buffered goes to /dev/null too
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
    finally:
        for fd in saved:
            os.close(fd)


EXPORT_NOTICES = (r"The tensor attributes? self\.\S*_flat_weights", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
ONNX_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def _not_torchvision_notice(record: logging.LogRecord) -> bool:
    """False for the ONNX exporter's "torchvision is not installed. Skipping torchvision::..." (workaround 5)."""
    return "torchvision is not installed" not in str(record.msg)


@contextlib.contextmanager
def export_notices_dropped() -> Iterator[None]:
    """Inside, the exporters' notices about their own internals (workaround 5) are not shown; other warnings are."""
    logger = logging.getLogger(ONNX_REGISTRATION_LOGGER)
    logger.addFilter(_not_torchvision_notice)
    try:
        with warnings.catch_warnings():
            for message in EXPORT_NOTICES:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        logger.removeFilter(_not_torchvision_notice)
