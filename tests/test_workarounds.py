"""The upstream problems that ppo_pipeline.workarounds works around, and that the workaround is exact."""

from __future__ import annotations

import gc
import importlib.util
import os
import re

import helpers
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tensordict import TensorDict, TensorDictBase
from tensordict.nn import TensorDictModule

from ppo_pipeline import workarounds


def test_tensordict_from_any_probes_pandas_per_tensor(monkeypatch):
    """Upstream: TensorDictBase.from_any(tensor) calls importlib.util.find_spec('pandas') each time."""
    probes = []
    real = importlib.util.find_spec

    def counting(name, *a, **k):
        probes.append(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib.util, "find_spec", counting)
    with workarounds.scoped():
        patched = TensorDictBase.__dict__["from_any"].__func__
        upstream = patched.__closure__[0].cell_contents if patched.__closure__ else patched
        x = torch.randn(3)
        assert upstream(TensorDict, x) is x
        assert probes.count("pandas") == 1          # the bug: a module search for one tensor
        probes.clear()
        assert TensorDict.from_any(x) is x          # patched: same object back, no probe
        assert probes == []


@workarounds.scoped()
def test_from_any_unchanged_for_other_inputs():
    td = TensorDict.from_any({"a": torch.zeros(2)})
    assert isinstance(td, TensorDict) and td["a"].shape == (2,)
    assert TensorDict.from_any(td) is td


@workarounds.scoped()
def test_module_outputs_identical_with_workaround():
    mod = TensorDictModule(torch.nn.Linear(3, 2), in_keys=["x"], out_keys=["y"])
    td = TensorDict({"x": torch.ones(4, 3)}, [4])
    out = mod(td)
    assert torch.equal(out["y"], mod.module(torch.ones(4, 3)))


def test_dmcontrolenv_drops_render_kwargs_into_the_task():
    """Upstream: torchrl's DMControlEnv passes render_kwargs on to the DMControl task, which refuses them."""
    import pytest
    from torchrl.envs import DMControlEnv

    from ppo_pipeline.envs.torchrl import _import_dm_control

    _import_dm_control()
    with pytest.raises(TypeError, match="render_kwargs"):
        DMControlEnv("cheetah", "run", from_pixels=True, pixels_only=True, render_kwargs={"height": 84, "width": 84})
    env = workarounds.dmc_pixels_env("cheetah", "run", 84, 84)
    try:
        assert tuple(env.reset()["pixels"].shape) == (84, 84, 3)
    finally:
        env.close()
        del env
        gc.collect()  # both envs' GL contexts freed here, on the thread they are current on (in a later test's
        # worker thread dm_control's __del__ raises "already current on another thread": pytest's 1 warning)


OPTIMIZER_STEP_COMPILED = """
import sys, torch
if sys.argv[1] == "with":
    from ppo_pipeline import workarounds
    workarounds.apply()
w = torch.nn.Parameter(torch.randn(4, 3))
opt = torch.optim.Adam([w], lr=torch.tensor(1e-3), fused=True)
w.grad = torch.randn(4, 3)
torch.compile(lambda: opt.step())()
"""


def test_dynamo_warns_when_it_compiles_optimizer_step():
    """Upstream: compiling a function that calls optimizer.step() logs dynamo's "Profiler record function ...
    will be ignored" warning (a fresh process each: dynamo warns once per process); the workaround drops it."""
    import sys

    without, with_ = helpers.run_two_at_a_time([[sys.executable, "-c", OPTIMIZER_STEP_COMPILED, m]
                                                for m in ("without", "with")])
    assert without.returncode == 0 and with_.returncode == 0, without.stderr[-2000:] + with_.stderr[-2000:]
    assert "Profiler record function" in without.stderr     # the upstream noise
    assert "Profiler record function" not in with_.stderr


PYBULLET_NOISE = """
import sys, torch
sys.path[0] = {root!r}
quiet = {quiet}
from ppo_pipeline import workarounds
import contextlib
ctx = workarounds.c_output_silenced if quiet else contextlib.nullcontext
with ctx():
    import pybullet_envs_gymnasium, pybullet, gymnasium as gym
    env = gym.make("HumanoidBulletEnv-v0")
    env.reset(seed=0)
print("done")
"""


def test_pybullet_prints_on_import_and_connect():
    """Upstream: pybullet prints 'pybullet build time' on import and 'argv[0]=' when an env connects; silenced."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    outs = helpers.run_two_at_a_time([[sys.executable, "-c", PYBULLET_NOISE.format(root=root, quiet=q)]
                                      for q in (False, True)])
    for quiet, out in zip((False, True), outs):
        both = out.stdout + out.stderr
        assert out.returncode == 0 and "done" in out.stdout, both
        assert ("pybullet build time" in both and "argv[0]=" in both) != quiet, both


EXPORTERS = """
import contextlib, sys, warnings, torch
warnings.simplefilter("always")
from ppo_pipeline import workarounds
quiet = sys.argv[1] == "with"

class Step(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 4)

    def forward(self, x, h, c):
        out, (h, c) = self.lstm(x.unsqueeze(0), (h, c))
        return out.squeeze(0), h, c

with workarounds.export_notices_dropped() if quiet else contextlib.nullcontext():
    program = torch.export.export(Step(), (torch.zeros(2, 3), torch.zeros(1, 2, 4), torch.zeros(1, 2, 4)))
    torch.onnx.export(program, dynamo=True, verbose=False)
    warnings.warn("another warning still shows")
print("done")
"""


def test_exporters_warn_about_their_internals():
    """Upstream: torch.export of an nn.LSTM warns that its ``_flat_weights`` were assigned during export; the ONNX
    exporter warns that ``LeafSpec`` is deprecated (its own deepcopy) and logs that torchvision is not installed.
    The workaround drops those three, and only those (a fresh process each: logs and warnings once per process)."""
    import sys

    notices = ("_flat_weights", "LeafSpec", "torchvision is not installed")
    modes = ("without", "with")
    for mode, p in zip(modes, helpers.run_two_at_a_time([[sys.executable, "-c", EXPORTERS, m] for m in modes])):
        assert p.returncode == 0 and "done" in p.stdout, p.stderr[-2000:]
        assert [n for n in notices if n in p.stderr] == (list(notices) if mode == "without" else []), p.stderr
        assert "another warning still shows" in p.stderr


# ------------------------------------------------------------------------------------------------------
# Importing the package changes nothing global; the workarounds act inside the package only
# ------------------------------------------------------------------------------------------------------
IMPORT_EVERYTHING = """
import importlib, logging, pkgutil, sys
sys.path[0] = {root!r}
import torch
from tensordict import TensorDictBase

def state():
    return (torch.distributions.Distribution._validate_args, TensorDictBase.__dict__["from_any"],
            list(logging.getLogger("torch._dynamo.variables.ctx_manager").filters), torch.broadcast_shapes)

before = state()
import ppo_pipeline
names = [m.name for m in pkgutil.walk_packages(ppo_pipeline.__path__, "ppo_pipeline.")
         if m.name.rsplit(".", 1)[-1] != "__main__"]
for name in names:
    importlib.import_module(name)
assert "ppo_pipeline.algo.policy" in sys.modules and "torchrl.modules" in sys.modules, names
after = state()
assert after[0] is before[0] is True, (before, after)      # torch's default (python without -O)
assert after[1] is before[1], (before, after)
assert after[2] == before[2], (before, after)
assert after[3] is before[3], (before, after)
try:                                                       # a user's distribution still checks its arguments
    torch.distributions.Normal(0.0, -1.0)
except ValueError:
    print("checked", len(names))
"""


def test_importing_changes_nothing_global():
    """A fresh process: ``import ppo_pipeline`` and every submodule (torchrl's modules with them) leave
    torch.distributions' default validate_args, TensorDictBase.from_any, dynamo's logger and torch.broadcast_shapes
    as they were."""
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    p = subprocess.run([sys.executable, "-c", IMPORT_EVERYTHING.format(root=root)], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0 and p.stdout.startswith("checked"), p.stderr[-3000:]
    assert int(p.stdout.split()[1]) > 50          # the walk did reach the whole package


TORCHRL_IMPORT = """
import sys, torch
sys.path[0] = {root!r}
from ppo_pipeline import workarounds
if sys.argv[1] == "with":
    with workarounds.distribution_default_kept():
        import torchrl.modules
else:
    import torchrl.modules
print(torch.distributions.Distribution._validate_args)
"""


def test_torchrl_import_turns_off_every_distributions_checks():
    """Upstream: importing torchrl.modules sets torch.distributions' process-wide default validate_args to False
    (a fresh process each); inside distribution_default_kept the default is back after the import."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    without, with_ = helpers.run_two_at_a_time([[sys.executable, "-c", TORCHRL_IMPORT.format(root=root), m]
                                                for m in ("without", "with")])
    assert without.returncode == 0 and with_.returncode == 0, without.stderr[-2000:] + with_.stderr[-2000:]
    assert without.stdout.strip() == "False"      # the upstream side effect
    assert with_.stdout.strip() == "True"


def test_package_distributions_never_check_their_arguments(monkeypatch):
    """With torch's default on (as a user's process has it), every distribution the agent builds (torchrl's
    ProbabilisticActor included) skips the argument checks, as the package's loss expects; a plain torch
    distribution in the same process still checks."""
    import gymnasium as gym
    import numpy as np
    import pytest

    from ppo_pipeline import config
    from ppo_pipeline.algo import distributions
    from ppo_pipeline.algo.policy import Agent

    monkeypatch.setattr(torch.distributions.Distribution, "_validate_args", True)
    nan = float("nan")
    obs = gym.spaces.Box(-1, 1, (3,), np.float32)
    for act in (gym.spaces.Discrete(3), gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.MultiDiscrete([2, 3]),
                gym.spaces.MultiBinary(2)):
        agent = Agent(obs, act, config.classic())
        dist = agent.actor.get_dist(TensorDict({"observation": torch.full((4, 3), nan)}, [4]))
        action = torch.as_tensor(np.stack([act.sample() for _ in range(4)]))
        action = action.float() if isinstance(act, (gym.spaces.Box, gym.spaces.MultiBinary)) else action
        assert dist.log_prob(action).isnan().all(), act          # NaN through, for the NaN stop; no ValueError
        assert not dist._validate_args and not getattr(dist, "base_dist", dist)._validate_args
    masked = distributions.MaskedCategoricalHead(torch.nn.Identity())
    dist = distributions.build(masked, masked(torch.full((2, 3), nan), torch.ones(2, 3, dtype=torch.bool)))
    assert not dist.log_prob(torch.tensor([0, 1])).isfinite().any() and not dist._validate_args
    with pytest.raises(ValueError, match="logits"):
        torch.distributions.Categorical(logits=torch.full((2,), nan))


def test_from_any_shortcut_only_inside_scoped_and_an_update():
    """Workarounds 1, 3 and 12 are in place inside ``scoped`` (nested too) and during ``PPO.update``, upstream
    after."""
    import logging

    from ppo_pipeline import config
    from ppo_pipeline.algo.ppo import PPO
    from ppo_pipeline.envs import make_vector_env

    upstream = TensorDictBase.__dict__["from_any"]
    logger = logging.getLogger(workarounds.DYNAMO_CTX_LOGGER)

    def in_place() -> bool:
        broadcast = torch.broadcast_shapes is workarounds.plain_broadcast_shapes
        assert broadcast is (TensorDictBase.__dict__["from_any"] is not upstream) is bool(logger.filters)
        return broadcast

    assert not in_place()
    with workarounds.scoped():
        with workarounds.scoped():
            assert in_place()
        assert in_place()
    assert not in_place() and TensorDictBase.__dict__["from_any"] is upstream
    assert torch.broadcast_shapes is workarounds.TORCH_BROADCAST_SHAPES

    cfg = config.classic(num_envs=2, num_steps=8, minibatch_size=8, epochs=1, total_steps=16, compile="off")
    envs = make_vector_env(cfg, cfg.num_envs)
    try:
        ppo = PPO(cfg, envs, torch.device("cpu"))
        ppo.collector.reset([0, 1])
        seen = []
        gae = ppo.gae
        ppo.gae = lambda batch: (seen.append(in_place()), gae(batch))[1]
        rows, diverged = ppo.update(1)
        assert seen == [True] and not in_place() and rows and not diverged
    finally:
        envs.close()


MUJOCO_SETTOTALMASS = """
import sys
sys.path[0] = {root!r}
mode = {mode!r}
from ppo_pipeline import workarounds
import ppo_pipeline, ppo_pipeline.envs, ppo_pipeline.envs.gymnasium  # importing changes nothing
import mujoco
assert mujoco.get_mju_user_warning() is None
if mode == "with":
    workarounds.quiet_mujoco_warnings()
if mode == "factory":       # where a run makes its envs
    from ppo_pipeline.config import mujoco as preset
    from ppo_pipeline.envs.gymnasium import make_vector_env
    make_vector_env(preset(env_id="HalfCheetah-v5"), 1).reset(seed=0)
else:
    import gymnasium as gym
    gym.make("HalfCheetah-v5").reset(seed=0)
print("done")
"""


def test_mujoco_warns_settotalmass_and_writes_its_log(tmp_path):
    """Upstream: building HalfCheetah-v5 on mujoco 3.17 prints the settotalmass deprecation and writes
    MUJOCO_LOG.TXT into the current directory (a fresh process each: the handler is per process); with workaround 5,
    installed by hand or where the gymnasium backend makes an env, neither happens."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    modes = ("without", "with", "factory")
    for mode in modes:
        (tmp_path / mode).mkdir()
    ps = helpers.run_two_at_a_time([[sys.executable, "-c", MUJOCO_SETTOTALMASS.format(root=root, mode=m)]
                                    for m in modes], [tmp_path / m for m in modes])
    for mode, p in zip(modes, ps):
        cwd = tmp_path / mode
        both = p.stdout + p.stderr
        assert p.returncode == 0 and "done" in p.stdout, both
        upstream = mode == "without"
        assert ("compiler attribute 'settotalmass' is deprecated" in both) == upstream, (mode, both)
        assert (cwd / "MUJOCO_LOG.TXT").exists() == upstream, mode


def test_other_mujoco_warnings_still_show(capsys):
    workarounds._mujoco_warning("Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.")
    workarounds._mujoco_warning("compiler attribute 'settotalmass' is deprecated and will be removed")
    assert capsys.readouterr().err == "WARNING: Nan, Inf or huge value in QACC at DOF 0. The simulation is unstable.\n"


def test_torchrl_collectors_import_warns_weight_updater_deprecation():
    """Upstream: importing torchrl.collectors warns that torchrl's own weight updaters inherit a deprecated base
    (a fresh process each: a module warns when first imported); with workaround 6 first, it does not."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    code = ("import sys; sys.path[0] = {root!r}\n"
            "from ppo_pipeline import workarounds\n"
            "if {quiet}: workarounds.quiet_torchrl_collectors()\n"
            "import torchrl.collectors\n")
    ps = helpers.run_two_at_a_time([[sys.executable, "-W", "default", "-c", code.format(root=root, quiet=q)]
                                    for q in (False, True)])
    for quiet, p in zip((False, True), ps):
        assert p.returncode == 0, p.stderr[-2000:]
        assert ("Creating VanillaWeightUpdater which inherits from WeightUpdaterBase is deprecated" in p.stderr) != quiet
        assert ("DeprecationWarning" in p.stderr) != quiet, p.stderr


@pytest.mark.slow
def test_torchrl_collector_run_prints_no_upstream_warnings(tmp_path):
    """A ``--collector torchrl --collector-workers 2`` run under ``python -W default``: neither the weight-updater
    deprecations (main process and each spawned worker) nor MultiSyncCollector's use_buffer warning."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-W", "default", str(root / "recipes" / "classic_control.py"),
                        "--collector", "torchrl", "--collector-workers", "2", "--total-steps", "256",
                        "--eval-episodes", "0", "--no-progress", "--run-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(root)})
    assert p.returncode == 0, p.stderr[-2000:]
    assert "WeightUpdater" not in p.stderr and "use_buffer" not in p.stderr and "Warning" not in p.stderr, p.stderr


def test_envpool_spaces_warn_box_precision_lowered(tmp_path):
    """Upstream: envpool's CartPole observation space is a float32 Box built from float64 bounds, and gymnasium
    warns twice; our envpool backend reads it inside workaround 7 and warns nothing."""
    import warnings

    import envpool

    from ppo_pipeline import config
    from ppo_pipeline.envs import envpool as envpool_backend
    from ppo_pipeline.run.prepare import prepare

    with pytest.warns(UserWarning, match="precision lowered by casting to float32"):
        envpool.make("CartPole-v1", env_type="gymnasium", num_envs=1).observation_space
    cfg = prepare(config.classic(env_backend="envpool", num_envs=2, minibatch_size=32, run_dir=str(tmp_path)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        envs = envpool_backend.make_vector_env(cfg, 2)
    envs.close()


def _masked_logits(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    mask = torch.rand(16, 3, generator=gen) < 0.5
    mask[torch.arange(16), torch.randint(0, 3, (16,), generator=gen)] = True
    return torch.randn(16, 3, generator=gen), torch.randn(16, 3, generator=gen), mask


def test_compiled_categorical_kl_gradient_is_wrong_where_probabilities_are_zero():
    """Upstream: inductor's gradient of torch's categorical KL between two distributions with zero-probability
    actions (-inf logits) is off; the package's masked categorical KL (workaround 10) has the same values and
    eager gradients and compiles exactly."""
    from torch.distributions import Categorical, kl_divergence

    from ppo_pipeline.algo.distributions import UncheckedMaskedCategorical

    old, new, mask = _masked_logits()

    def torch_kl(x):
        return kl_divergence(Categorical(logits=old.masked_fill(~mask, -torch.inf)),
                             Categorical(logits=x.masked_fill(~mask, -torch.inf))).mean()

    def ours(x):
        return kl_divergence(UncheckedMaskedCategorical(logits=old, mask=mask),
                             UncheckedMaskedCategorical(logits=x, mask=mask)).mean()

    def grad(fn, compiled):
        torch._dynamo.reset()
        x = new.clone().requires_grad_()
        value = (torch.compile(fn) if compiled else fn)(x)
        return value.detach(), torch.autograd.grad(value, x)[0]

    (v, g), (v_c, g_c) = grad(torch_kl, False), grad(torch_kl, True)
    assert torch.allclose(v, v_c, atol=1e-6)
    assert not torch.allclose(g, g_c, rtol=1e-3, atol=1e-5)          # the bug: the compiled gradient is off
    (w, h), (w_c, h_c) = grad(ours, False), grad(ours, True)
    assert torch.allclose(w, v, atol=1e-7) and torch.allclose(h, g, atol=1e-7)    # the same KL as torch's (eager)
    assert torch.allclose(w_c, v, atol=1e-6) and torch.allclose(h_c, g, rtol=1e-5, atol=1e-7)   # compiled: exact
    forbidden = mask.clone()
    forbidden[0] = torch.tensor([True, False, False])
    allowing = mask.clone()
    allowing[0] = True
    kl = kl_divergence(UncheckedMaskedCategorical(logits=old, mask=allowing),
                       UncheckedMaskedCategorical(logits=new, mask=forbidden))
    assert kl[0] == torch.inf and torch.isfinite(kl[1:]).all()       # q forbids an action p allows: inf, as torch's


# ------------------------------------------------------------------------------------------------------
# 11. torch's compiler stack is imported by tensordict, torchrl and torch.optim though nothing compiles
# ------------------------------------------------------------------------------------------------------
COMPILER_STACK = """
import sys
sys.path[0] = {root!r}
import torch
from ppo_pipeline import workarounds
mode = sys.argv[1]
if mode in ("deferred", "submodule"):
    assert workarounds.defer_compiler_stack()
if mode in ("tensordict", "deferred", "submodule"):
    import tensordict, torchrl.objectives
    from ppo_pipeline.run import trainer
if mode in ("optimizer", "deferred"):
    p = torch.nn.Parameter(torch.ones(3))
    adam = torch.optim.Adam([p], lr=0.1)
    (p * p).sum().backward()
    adam.step()
    assert torch.allclose(p, torch.full((3,), 0.9)), p      # the step still took place
print(type(sys.modules["torch._dynamo"]).__name__, "sympy" in sys.modules)
if mode == "deferred":                                      # anything beyond the decorators: the real module
    assert torch._dynamo.config.cache_size_limit > 0
    print(type(sys.modules["torch._dynamo"]).__name__, torch._dynamo is sys.modules["torch._dynamo"])
if mode == "submodule":                                     # an import of a submodule: the real package, once
    import torch._dynamo.config as config                   # the one the package's modules use: run once
    print(type(sys.modules["torch._dynamo"]).__name__, torch._dynamo.convert_frame.config is config,
          sys.modules["torch._dynamo.config"] is config, config.cache_size_limit > 0,
          type(config.__spec__.loader).__name__)
"""


def test_tensordict_and_optimizer_import_the_compiler_stack():
    """Upstream: importing tensordict (and torchrl's loss), or the first step of a torch optimizer, imports
    torch._dynamo and sympy in a process that compiles nothing (a fresh process each). With workaround 11 the same
    imports and an Adam step leave them out, the step is taken, and asking the stand-in for anything else (a name, or
    a submodule's import) brings the real module in its place."""
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    modes = ("tensordict", "optimizer", "deferred", "submodule")
    ps = helpers.run_two_at_a_time([[sys.executable, "-c", COMPILER_STACK.format(root=root), m] for m in modes])
    out = {}
    for mode, p in zip(modes, ps):
        assert p.returncode == 0, (mode, p.stderr[-3000:])
        out[mode] = p.stdout.splitlines()
    assert out["tensordict"] == ["module True"]             # the upstream behaviour
    assert out["optimizer"] == ["module True"]
    assert out["deferred"] == ["_DeferredDynamo False", "module True"]
    assert out["submodule"] == ["_DeferredDynamo False", "module True True True SourceFileLoader"]


DEFERRED_RUN = """
import sys
sys.path[0] = {root!r}
from ppo_pipeline.launch import recipe_main
assert recipe_main("classic", "d", sys.argv[1:]) == 0
print(type(sys.modules["torch._dynamo"]).__name__)
"""


def test_deferred_compiler_stack_run_is_the_same_run(tmp_path):
    """A recipe's run that never compiles runs with the stand-in (workaround 11) and learns exactly what the same
    run learns in this process, where torch._dynamo is loaded: every logged loss, KL and return, the evaluation's
    returns. A run that may compile keeps the real module (:func:`compiling.never_at_budget`)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from ppo_pipeline import config, launch
    from ppo_pipeline.algo import compiling

    assert "torch._dynamo" in sys.modules and not isinstance(sys.modules["torch._dynamo"], workarounds._DeferredDynamo)
    root = str(Path(__file__).resolve().parents[1])
    argv = ["--total-steps", "2048", "--eval-episodes", "2", "--no-progress", "--no-tensorboard", "--name", "r"]
    p = subprocess.run([sys.executable, "-c", DEFERRED_RUN.format(root=root), *argv, "--run-dir", str(tmp_path / "a")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.splitlines()[-1] == "_DeferredDynamo", p.stdout[-2000:] + p.stderr[-3000:]
    assert launch.main(config.classic, "t", [*argv, "--run-dir", str(tmp_path / "b")]) == 0

    def learned(run: str) -> tuple:
        lines = (tmp_path / run / "r" / "metrics.csv").read_text().splitlines()
        header = lines[0].split(",")
        kept = [i for i, k in enumerate(header) if k not in ("sps", "time_s")]
        rows = [[line.split(",")[i] for i in kept] for line in lines]
        summary = json.loads((tmp_path / run / "r" / "summary.json").read_text())
        return rows, summary["final_eval_returns"], summary["last100_return_mean"]

    a, b = learned("a"), learned("b")
    assert len(a[0]) == 9 and a == b                       # 8 updates and the header, equal to the last digit

    small = config.classic(total_steps=2048)
    cpu = torch.device("cpu")
    assert compiling.never_at_budget(small, cpu)
    assert not compiling.never_at_budget(config.classic(total_steps=2048, compile="on"), cpu)
    assert not compiling.never_at_budget(small, torch.device("cuda"))
    assert not compiling.never_at_budget(config.classic(total_steps=3_000_000), cpu)  # auto: >= 20k minibatch steps
    assert compiling.never_at_budget(config.classic(total_steps=100_000), cpu)      # 7,820 minibatch steps alone,
    assert not compiling.never_at_budget(config.classic(total_steps=100_000), cpu, members=2)  # a pack's: >= 5k


BROADCAST_SHAPES = """
import sys
import torch
from ppo_pipeline import workarounds
workarounds.defer_compiler_stack()  # as in a recipe's run: nothing else imports sympy (workaround 11)
import tensordict, torchrl.objectives
assert "sympy" not in sys.modules
if sys.argv[1] == "with":
    with workarounds.scoped():
        shape = torch.broadcast_shapes(torch.Size([64, 1]), torch.Size([64, 1]))
else:
    shape = torch.broadcast_shapes(torch.Size([64, 1]), torch.Size([64, 1]))
print(tuple(shape), "sympy" in sys.modules, "torch.fx.experimental.symbolic_shapes" in sys.modules)
"""


def test_broadcast_shapes_imports_sympy():
    """Upstream: one ``torch.broadcast_shapes`` of two plain sizes (torchrl's PPO loss calls it every forward)
    imports torch's symbolic shapes and sympy (a fresh process each, torch's compiler stack deferred as in a
    recipe's run); inside ``scoped`` neither (workaround 12)."""
    import subprocess
    import sys

    out = {}
    for mode in ("without", "with"):
        p = subprocess.run([sys.executable, "-c", BROADCAST_SHAPES, mode], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        out[mode] = p.stdout.split()
    assert out["without"] == ["(64,", "1)", "True", "True"]      # the import
    assert out["with"] == ["(64,", "1)", "False", "False"]       # none


dims = st.integers(0, 4)


@settings(max_examples=400)
@given(st.lists(st.lists(dims, max_size=4).map(tuple), max_size=4), st.booleans())
def test_plain_broadcast_shapes_is_torchs(shapes, as_size):
    """Workaround 12: the same shape as ``torch.broadcast_shapes``, or the same error, for any sizes (0 and 1
    included, so that many do not broadcast); lists and single ints go to torch's function."""
    args = [torch.Size(s) if as_size else s for s in shapes]
    try:
        expected = workarounds.TORCH_BROADCAST_SHAPES(*args)
    except RuntimeError as e:
        with pytest.raises(RuntimeError, match=re.escape(str(e))):
            workarounds.plain_broadcast_shapes(*args)
        return
    got = workarounds.plain_broadcast_shapes(*args)
    assert type(got) is torch.Size and got == expected


def test_plain_broadcast_shapes_hands_other_inputs_to_torch():
    """Lists, single ints and negative sizes: torch's function answers (its result, or its error)."""
    up, ours = workarounds.TORCH_BROADCAST_SHAPES, workarounds.plain_broadcast_shapes
    for args in [([2, 1], (1, 3)), (3, (2, 1)), (), ((2, 1), None)]:
        assert ours(*args) == up(*args)
    with pytest.raises(ValueError) as theirs:
        up((2, -1), (2, 1))
    with pytest.raises(ValueError, match=re.escape(str(theirs.value))):
        ours((2, -1), (2, 1))
