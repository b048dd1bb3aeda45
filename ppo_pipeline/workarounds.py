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
1, 3 and 12 are in place inside :func:`scoped` only, or for the rest of a process that calls :func:`apply` (the package
does in the processes it starts for itself: torchrl collector workers).
7. mujoco 3.17 warns when it compiles a model that sets the deprecated compiler attribute ``settotalmass``
   (gymnasium's HalfCheetah-v5, dm_control's cheetah): ``WARNING: compiler attribute 'settotalmass' is deprecated
   ...`` on stdout, and the same line appended to ``MUJOCO_LOG.TXT`` in the current directory, for every env built
   (each vector env's worker, each evaluation env). :func:`quiet_mujoco_warnings` gives MuJoCo a warning handler
   (``mujoco.set_mju_user_warning``): that one message is dropped, any other is printed on stderr as MuJoCo words
   it, and MuJoCo writes no log file; dm_control, which replaces the handler with one that logs through absl when
   it is imported, has that message filtered from the ``absl`` logger. Installed where a MuJoCo env is made (the
   gymnasium backend's env factory, in each worker process; the torchrl backend's), never on import.
   Shown by ``tests/test_workarounds.py::test_mujoco_warns_settotalmass_and_writes_its_log``.
8. torchrl 0.14's own collectors subclass its deprecated ``WeightUpdaterBase``, so importing ``torchrl.collectors``
   warns four times, "DeprecationWarning: Creating VanillaWeightUpdater which inherits from WeightUpdaterBase is
   deprecated ..." (and MultiProcessed-, RemoteModule-, RayWeightUpdater): about torchrl's classes, not ours,
   seen wherever DeprecationWarnings show (pytest, ``python -W default``), once more in each of a
   ``MultiSyncCollector``'s worker processes. :func:`quiet_torchrl_collectors` ignores that one message before
   ``--collector torchrl`` imports torchrl's collectors, and hands the same filter to the worker processes it
   spawns (through ``sys.warnoptions``, which multiprocessing passes on as ``-W``; only where warning options
   were given, else those workers ignore DeprecationWarnings anyway). Every other warning still shows.
   Shown by ``tests/test_workarounds.py::test_torchrl_collectors_import_warns_weight_updater_deprecation``.
9. envpool 0.8 builds its classic-control and MuJoCo observation spaces as ``gymnasium.spaces.Box(float64 bounds,
   dtype=float32)``, and gymnasium warns "UserWarning: WARN: Box low's precision lowered by casting to float32"
   (and high's) each time: two lines in every ``--env-backend envpool`` CartPole run's terminal. The bounds are
   what the space is; the cast is what the envs deliver. :func:`box_precision_notice_dropped` ignores those two
   messages, only while our envpool backend reads its pool's spaces (a ``warnings.catch_warnings`` block: nothing
   changes outside it). Shown by ``tests/test_workarounds.py::test_envpool_spaces_warn_box_precision_lowered``.
10. torch 2.13's inductor differentiates torch's categorical KL (``_kl_categorical_categorical``) wrongly where
    both distributions have actions of probability 0 (logits -inf: a masked categorical's): its two in-place
    overwrites of ``p (log p - log q)`` (inf where q = 0, then 0 where p = 0, both over the nan of -inf - -inf)
    come out of a compiled backward with gradients up to half off, while eager and ``aot_eager`` are exact. A
    pack's update compiles by default (``ppo_pipeline.algo.compiling``), so the KL-penalty objectives of a masked
    pack (and a solo run's under ``--compile on``) learned from wrong gradients. The package's masked categorical
    (:class:`ppo_pipeline.algo.distributions.UncheckedMaskedCategorical`) has its own KL registered: the same
    values and eager gradients, written with ``torch.where``, which compiles exactly. Shown by
    ``tests/test_workarounds.py::test_compiled_categorical_kl_gradient_is_wrong_where_probabilities_are_zero``.
11. torch 2.13's compiler front end, ``torch._dynamo`` (with sympy and the FX symbolic shapes under it), takes
    ~1.4 s of a process's start on the reference CPU, and a process imports it though it never compiles:
    tensordict 0.14 calls ``torch.compiler.allow_in_graph`` and ``assume_constant_result`` when it is imported,
    torchrl 0.14 decorates with ``torch._dynamo.assume_constant_result`` and ``disable`` at import, and
    ``torch.optim.Optimizer``'s methods (``torch._disable_dynamo``) import it at their first call. Eager code
    gets nothing from any of these: ``assume_constant_result`` marks an attribute, ``allow_in_graph`` records an
    id and ``disable`` wraps a function, each read only while compiling. :func:`defer_compiler_stack` puts a
    stand-in in ``sys.modules["torch._dynamo"]`` with those decorators as eager code sees them (and
    ``is_compiling``, and ``graph_break``, a no-op outside a trace); any other name read from it, or an import of
    one of its submodules, imports the real ``torch._dynamo`` in its place. A process installs it only where it is the command's own and nothing in it
    will compile (:func:`ppo_pipeline.algo.compiling.never_at_budget`): a recipe's run (``recipe_main``) and the
    ranks it starts, a sweep's SLURM job and a local sweep's rank processes, ``python -m ppo_pipeline.play`` (3.5 ->
    2.0 s for two CartPole episodes); never on import, never in a caller's Python (``launch.main``, the API). ~1.4 s less start-up for a short run (CartPole at 100k steps: ~9% of its wall clock). Shown by
    ``tests/test_workarounds.py::test_tensordict_and_optimizer_import_the_compiler_stack``; a deferred run
    equals the same run with the compiler stack loaded: ``test_deferred_compiler_stack_run_is_the_same_run``.
12. torch 2.13's ``torch.broadcast_shapes`` runs ``torch._refs._broadcast_shapes``, written for the compiler's
    symbolic sizes: it imports ``torch.fx.experimental.symbolic_shapes`` (and sympy under it: ~0.4 s, the largest
    import left in a run that never compiles, workaround 11) at its first call and costs ~7 us a call, for plain
    sizes too. torchrl 0.14's PPO losses call it in every forward (``_check_advantage_broadcast``).
    :func:`scoped` (and :func:`apply`) put :func:`plain_broadcast_shapes` in its place: the same broadcast
    computed over tuples of plain non-negative ints (0.7 us); anything else (lists, single ints, symbolic sizes,
    shapes that do not broadcast, a trace in progress) goes to torch's function, error messages included.
    Shown by ``tests/test_workarounds.py::test_broadcast_shapes_imports_sympy``; equal to torch's over random
    shapes: ``test_plain_broadcast_shapes_is_torchs`` (hypothesis).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch

DYNAMO_CTX_LOGGER = "torch._dynamo.variables.ctx_manager"


def _without_pandas_probe(original: Any) -> Any:
    """``from_any`` that returns a plain tensor (or parameter) at once, ``original`` (a function) for the rest."""

    def from_any(cls, obj, **kwargs):
        if type(obj) is torch.Tensor or type(obj) is torch.nn.Parameter:
            return obj  # what the original returns for a tensor, minus its pandas probe
        return original(cls, obj, **kwargs)

    from_any.__doc__ = original.__doc__
    return classmethod(from_any)


@functools.cache
def _from_any_pair() -> tuple[Any, Any]:
    """(tensordict's ``from_any`` classmethod, read only; ours): one object each, so compiled code's guards hold.
    Looked up at first use, so that importing this module does not import tensordict (workaround 11)."""
    from tensordict import TensorDictBase

    upstream = TensorDictBase.__dict__["from_any"]
    return upstream, _without_pandas_probe(upstream.__func__)


TORCH_BROADCAST_SHAPES = torch.broadcast_shapes  # torch's (workaround 12 puts it back after :func:`scoped`)


def plain_broadcast_shapes(*shapes: Any) -> torch.Size:
    """``torch.broadcast_shapes`` over tuples (``torch.Size``) of plain non-negative ints, computed here; torch's
    function for any other input, for shapes that do not broadcast (its error) and during a trace (workaround 12).
    """
    if torch.compiler.is_compiling():
        return TORCH_BROADCAST_SHAPES(*shapes)
    out: list[int] = []  # the broadcast shape, last dimension first
    for shape in shapes:
        if not isinstance(shape, tuple):
            return TORCH_BROADCAST_SHAPES(*shapes)
        for i, d in enumerate(reversed(shape)):
            if type(d) is not int or d < 0:
                return TORCH_BROADCAST_SHAPES(*shapes)
            if i == len(out):
                out.append(d)
            elif out[i] == 1:
                out[i] = d
            elif d != 1 and d != out[i]:
                return TORCH_BROADCAST_SHAPES(*shapes)
    return torch.Size(out[::-1])


def _install() -> bool:
    """Put 1, 3 and 12 in place; False (and nothing done) where they are already (nested, :func:`apply`) or where
    something else replaced ``from_any``."""
    from tensordict import TensorDictBase

    upstream, ours = _from_any_pair()
    if TensorDictBase.__dict__.get("from_any") is not upstream:
        return False
    TensorDictBase.from_any = ours
    logging.getLogger(DYNAMO_CTX_LOGGER).addFilter(_not_record_function_notice)
    torch.broadcast_shapes = plain_broadcast_shapes
    return True


@contextlib.contextmanager
def scoped() -> Iterator[None]:
    """Workarounds 1, 3 and 12 inside, upstream's behaviour again after (nests; also a decorator)."""
    mine = _install()
    try:
        yield
    finally:
        if mine:
            from tensordict import TensorDictBase

            TensorDictBase.from_any = _from_any_pair()[0]
            logging.getLogger(DYNAMO_CTX_LOGGER).removeFilter(_not_record_function_notice)
            torch.broadcast_shapes = TORCH_BROADCAST_SHAPES


def apply() -> None:
    """Workarounds 1, 3 and 12 for the rest of the process (idempotent): for processes that only run the package."""
    _install()


def _not_record_function_notice(record: logging.LogRecord) -> bool:
    """False for dynamo's "Profiler record function ... will be ignored" (workaround 3)."""
    return not str(record.msg).startswith("Profiler record function")


@contextlib.contextmanager
def distribution_default_kept() -> Iterator[None]:
    """``torch.distributions.Distribution``'s default ``validate_args`` after the block as before it (workaround 6):
    wrap each import of torchrl in it."""
    default = bool(torch.distributions.Distribution._validate_args)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(default)


SETTOTALMASS = "compiler attribute 'settotalmass' is deprecated"
_mujoco_quiet = False


def quiet_mujoco_warnings() -> None:
    """Install workaround 7 in this process (idempotent; nothing where mujoco is not installed): MuJoCo's warnings
    go to :func:`_mujoco_warning`, dm_control's absl-logged ones through :func:`_not_settotalmass`."""
    global _mujoco_quiet
    if _mujoco_quiet:
        return
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(_mujoco_warning)
    logging.getLogger("absl").addFilter(_not_settotalmass)
    _mujoco_quiet = True


def _mujoco_warning(message: str) -> None:
    """MuJoCo's warning ``message`` on stderr, as MuJoCo prints it, unless it is the settotalmass notice."""
    if SETTOTALMASS not in message:
        sys.stderr.write(f"WARNING: {message}\n")


def _not_settotalmass(record: logging.LogRecord) -> bool:
    """False for dm_control's absl record of MuJoCo's settotalmass notice (workaround 7)."""
    return "settotalmass" not in record.getMessage()


WEIGHT_UPDATER = r"Creating \w+ which inherits from WeightUpdaterBase is deprecated"
# the same for a spawned worker's -W option, which matches a literal start of the message and the module
# (abc: the warning is raised from the class creation in abc.ABCMeta.__new__)
WEIGHT_UPDATER_OPTION = "ignore:Creating :DeprecationWarning:abc"


def quiet_torchrl_collectors() -> None:
    """Install workaround 8 in this process (idempotent): call before importing ``torchrl.collectors``."""
    warnings.filterwarnings("ignore", message=WEIGHT_UPDATER, category=DeprecationWarning)
    if sys.warnoptions and WEIGHT_UPDATER_OPTION not in sys.warnoptions:
        sys.warnoptions.append(WEIGHT_UPDATER_OPTION)


@contextlib.contextmanager
def box_precision_notice_dropped() -> Iterator[None]:
    """Inside, gymnasium's "Box ... precision lowered by casting" UserWarning is ignored (workaround 9)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*precision lowered by casting to float32", category=UserWarning)
        yield


def dmc_pixels_env(domain: str, task: str, height: int, width: int) -> Any:
    """DMControl ``domain``/``task`` observing ``uint8 [height, width, 3]`` frames under ``"pixels"``
    (camera 0), as ``DMControlEnv(..., from_pixels=True, pixels_only=True, render_kwargs=...)`` would."""
    from dm_control import suite

    with distribution_default_kept():
        from torchrl.envs.libs.dm_control import DMControlWrapper

    return DMControlWrapper(
        suite.load(domain, task),
        from_pixels=True,
        pixels_only=True,
        render_kwargs={"height": height, "width": width, "camera_id": 0},
    )


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
            libc.fflush(None)  # what the C code buffered goes to /dev/null too
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


class _DeferredDynamo(types.ModuleType):
    """``torch._dynamo`` in a process that never compiles (workaround 11): the decorators, the no-op and the query that
    tensordict, torchrl and ``torch.optim`` use outside compilation, as eager code sees them; any other name loads
    the real ``torch._dynamo`` in its place (:func:`_real_dynamo`) and is read from it."""

    __path__: list[str] = []  # a package: ``import torch._dynamo.<name>`` asks :class:`_DynamoSubmodule`

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # the import system's probes (``__spec__``, ``__file__``): a plain module
            raise AttributeError(name)
        return getattr(_real_dynamo(), name)


class _DynamoSubmodule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import torch._dynamo.<name>`` while the stand-in holds the place: the real package is imported first, then
    the import that asked gets the module as the package imported it (one module, run once)."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[types.ModuleType, Any]] = {}

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if not name.startswith("torch._dynamo.") or not isinstance(sys.modules.get("torch._dynamo"), _DeferredDynamo):
            return None
        _real_dynamo()
        module = importlib.import_module(name)  # imported by the package already, or now
        # out of sys.modules until create_module hands it back: else the import system would load it a second time
        self.held[name] = module, module.__spec__
        del sys.modules[name]
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return self.held[spec.name][0]

    def exec_module(self, module: types.ModuleType) -> None:
        _, own = self.held.pop(module.__name__)  # it ran already; its own spec again (the import system set ours)
        with contextlib.suppress(AttributeError):  # (torch's config modules take no new attribute)
            module.__spec__ = own


_SUBMODULES = _DynamoSubmodule()


def _assume_constant_result(fn: Callable) -> Callable:
    fn._dynamo_marked_constant = True  # type: ignore[attr-defined]  # all that dynamo's own does
    return fn


def _allow_in_graph(fn: Any) -> Any:
    return list(fn) if isinstance(fn, (list, tuple)) else fn  # dynamo's records an id that only compiling reads


def _disable(fn: Callable | None = None, recursive: bool = True, **_: Any) -> Any:
    return fn if fn is not None else (lambda f: f)  # dynamo's wraps fn to skip it when compiling: eager, the same


def _graph_break(msg: str = "") -> None:
    """Eager: nothing (``torch.optim``'s step calls it around the update; only a trace reads it)."""


def _real_dynamo() -> types.ModuleType:
    """The real ``torch._dynamo``, imported now if the stand-in held its place (which then leaves it)."""
    if isinstance(sys.modules.get("torch._dynamo"), _DeferredDynamo):
        del sys.modules["torch._dynamo"]
        del torch._dynamo  # (the import below sets the real one)
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(_SUBMODULES)
    return importlib.import_module("torch._dynamo")


def defer_compiler_stack() -> bool:
    """Workaround 11 for the rest of this process: ``torch._dynamo`` (and sympy with it) is not imported unless
    something asks for more than the decorators; only for a process that never compiles (a run whose
    :func:`ppo_pipeline.algo.compiling.never_at_budget`), before tensordict is imported. False (nothing done)
    where ``torch._dynamo`` is imported already."""
    if "torch._dynamo" in sys.modules:
        return False
    stand_in = _DeferredDynamo("torch._dynamo", "stand-in for torch._dynamo (ppo_pipeline.workarounds, 11)")
    stand_in.assume_constant_result = _assume_constant_result  # type: ignore[attr-defined]
    stand_in.allow_in_graph = _allow_in_graph  # type: ignore[attr-defined]
    stand_in.disable = _disable  # type: ignore[attr-defined]
    stand_in.graph_break = _graph_break  # type: ignore[attr-defined]
    stand_in.is_compiling = torch.compiler.is_compiling  # type: ignore[attr-defined]
    sys.modules["torch._dynamo"] = stand_in
    torch._dynamo = stand_in  # as an import sets it: read at once, not by torch.__getattr__
    sys.meta_path.insert(0, _SUBMODULES)
    return True
