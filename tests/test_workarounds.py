"""The upstream problems that ppo_pipeline.workarounds works around, and that the workaround is exact."""

from __future__ import annotations

import importlib.util

import torch
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
    workarounds.apply()
    patched = TensorDictBase.__dict__["from_any"].__func__
    upstream = patched.__closure__[0].cell_contents if patched.__closure__ else patched
    x = torch.randn(3)
    assert upstream(TensorDict, x) is x
    assert probes.count("pandas") == 1          # the bug: a module search for one tensor
    probes.clear()
    assert TensorDict.from_any(x) is x          # patched: same object back, no probe
    assert probes == []


def test_from_any_unchanged_for_other_inputs():
    workarounds.apply()
    td = TensorDict.from_any({"a": torch.zeros(2)})
    assert isinstance(td, TensorDict) and td["a"].shape == (2,)
    assert TensorDict.from_any(td) is td


def test_module_outputs_identical_with_workaround():
    workarounds.apply()
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
    import subprocess
    import sys

    def stderr(mode: str) -> str:
        p = subprocess.run([sys.executable, "-c", OPTIMIZER_STEP_COMPILED, mode], capture_output=True, text=True,
                           timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stderr

    assert "Profiler record function" in stderr("without")     # the upstream noise
    assert "Profiler record function" not in stderr("with")


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
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    for quiet in (False, True):
        out = subprocess.run([sys.executable, "-c", PYBULLET_NOISE.format(root=root, quiet=quiet)],
                             capture_output=True, text=True, timeout=120)
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
    import subprocess
    import sys

    notices = ("_flat_weights", "LeafSpec", "torchvision is not installed")
    for mode in ("without", "with"):
        p = subprocess.run([sys.executable, "-c", EXPORTERS, mode], capture_output=True, text=True, timeout=300)
        assert p.returncode == 0 and "done" in p.stdout, p.stderr[-2000:]
        assert [n for n in notices if n in p.stderr] == (list(notices) if mode == "without" else []), p.stderr
        assert "another warning still shows" in p.stderr
