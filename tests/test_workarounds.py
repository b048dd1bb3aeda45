"""The upstream problems that ppo_pipeline.workarounds works around, and that the workaround is exact."""

from __future__ import annotations

import importlib.util
import os

import pytest

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
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    for mode in ("without", "with", "factory"):
        cwd = tmp_path / mode
        cwd.mkdir()
        p = subprocess.run([sys.executable, "-c", MUJOCO_SETTOTALMASS.format(root=root, mode=mode)], cwd=cwd,
                           capture_output=True, text=True, timeout=300)
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
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    code = ("import sys; sys.path[0] = {root!r}\n"
            "from ppo_pipeline import workarounds\n"
            "if {quiet}: workarounds.quiet_torchrl_collectors()\n"
            "import torchrl.collectors\n")
    for quiet in (False, True):
        p = subprocess.run([sys.executable, "-W", "default", "-c", code.format(root=root, quiet=quiet)],
                           capture_output=True, text=True, timeout=300)
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
