"""``python -m ppo_pipeline.export``: the ``torch.export`` program (and the ONNX model) runs without this
package and acts like the agent.

Each test trains a tiny real run, exports it, and loads the file in a *subprocess* that imports only
torch (``torch.export.load``) or onnxruntime (imports of ``ppo_pipeline`` are blocked there). Every policy
kind on random observations: ``test_export_programs.py``. The exported actions on observations recorded
from the env are compared with the agent's own deterministic actions computed here from the
checkpoint: the frozen normalizer, ``agent.act(deterministic=True)``, ``env_action``'s clipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.algo.normalize import ObsNormalizer
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.spaces import env_action, obs_tensor
from ppo_pipeline.envs import make_vector_env
from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.trainer import Trainer
from ppo_pipeline.tools import export

# One torch thread: on a shared 2-core machine, oversubscribed threads make these tiny runs 10x slower.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

PLAIN_TORCH = r"""
import json, sys

class NoPipeline:
    "Refuse ppo_pipeline imports: the file must run with torch alone."
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ppo_pipeline":
            raise ImportError("ppo_pipeline is blocked in this process")
        return None

sys.meta_path.insert(0, NoPipeline())
import torch

obs = torch.load(sys.argv[2])
if sys.argv[1].endswith(".onnx"):
    import onnxruntime
    session = onnxruntime.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    actions = torch.from_numpy(session.run(None, {"obs": obs.numpy()})[0])
    meta = session.get_modelmeta().custom_metadata_map["ppo_pipeline.json"]
    buffers = []
else:
    extra = {"ppo_pipeline.json": ""}
    program = torch.export.load(sys.argv[1], extra_files=extra)
    actions, meta = program.module()(obs), extra["ppo_pipeline.json"]
    buffers = sorted(name for name, _ in program.named_buffers())
assert "ppo_pipeline" not in sys.modules
torch.save({"actions": actions, "meta": json.loads(meta), "buffers": buffers}, sys.argv[3])
"""


def train(cfg: config.Config) -> Path:
    Trainer(cfg).train()
    return cfg.run_path()


def recorded_observations(cfg: config.Config, n: int, seed: int = 7) -> np.ndarray:
    """``n`` raw observations of ``cfg``'s evaluation envs under uniform random actions (episodes reset)."""
    envs = make_vector_env(cfg, 4, evaluation=True)
    envs.action_space.seed(seed)
    try:
        obs, _ = envs.reset(seed=[seed + i for i in range(4)])
        out = [obs]
        while sum(len(o) for o in out) < n:
            obs = envs.step(envs.action_space.sample())[0]
            out.append(obs)
    finally:
        envs.close()
    return np.concatenate(out)[:n]


def agent_actions(run_path: Path, cfg: config.Config, obs: np.ndarray) -> np.ndarray:
    """What the trained agent sends to the env for ``obs``, computed from the newest checkpoint."""
    state = checkpoint.load(checkpoint.latest(run_path))
    envs = make_vector_env(cfg, 1, evaluation=True)
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    envs.close()
    agent = Agent(obs_space, act_space, cfg)
    agent.load_state_dict(state["agent"])
    x = obs
    if cfg.normalize_obs:
        norm = ObsNormalizer(obs_space.shape, cfg.clip_obs)
        norm.load_state_dict(state["obs_norm"])
        x = norm.frozen_copy()(obs, update=False)
    return env_action(agent.act(obs_tensor(x, torch.device("cpu")), deterministic=True)["action"], act_space)


def export_and_run(run_path: Path, obs: np.ndarray, tmp: Path, suffix: str = ".pt2") -> dict:
    """Export ``run_path`` with the CLI to ``policy<suffix>``, then run the file on ``obs`` in a subprocess
    without ppo_pipeline (torch alone for a ``.pt2``, onnxruntime for an ``.onnx``)."""
    out = tmp / f"policy{suffix}"
    res = subprocess.run([sys.executable, "-m", "ppo_pipeline.export", str(run_path), "--out", str(out)],
                         capture_output=True, text=True, env=ENV, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stderr == "", res.stderr      # not a warning on the way (no deprecated API: torch.jit is gone)
    lines = res.stdout.strip().splitlines()
    kind = "ONNX" if suffix == ".onnx" else "torch.export program"
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}: {kind}"), res.stdout
    torch.save(torch.from_numpy(obs), tmp / "obs.pt")
    res = subprocess.run([sys.executable, "-c", PLAIN_TORCH, str(out), str(tmp / "obs.pt"), str(tmp / "actions.pt")],
                         capture_output=True, text=True, env=ENV, timeout=120, cwd=tmp)
    assert res.returncode == 0, res.stderr
    return {"line": lines[0], **torch.load(tmp / "actions.pt")}


def test_cartpole_export_argmax_equals_agent(tmp_path):
    cfg = tiny(config.classic, tmp_path, name="cartpole", eval_episodes=1, torch_threads=1)
    run_path = train(cfg)
    obs = recorded_observations(cfg, 256)
    assert obs.dtype == np.float32
    got = export_and_run(run_path, obs, tmp_path)
    expected = agent_actions(run_path, cfg, obs)
    assert got["actions"].dtype == torch.int64 and got["actions"].shape == (256,)
    assert np.array_equal(got["actions"].numpy(), expected)
    assert got["meta"]["observation"] == {"shape": [4], "dtype": "float32"}
    assert got["meta"]["action"]["kind"] == "discrete" and not got["meta"]["normalize_obs"]
    assert "argmax of 2 logits" in got["line"] and got["meta"]["exported_with"] == "torch.export"
    onnx = export_and_run(run_path, obs, tmp_path, ".onnx")
    assert np.array_equal(onnx["actions"].numpy(), expected) and onnx["meta"]["action"]["kind"] == "discrete"


def test_continuous_export_folds_in_frozen_normalization(tmp_path):
    cfg = tiny(config.mujoco, tmp_path, name="pendulum", env_id="InvertedPendulum-v5", normalize_obs=True,
               num_steps=256, eval_episodes=1, torch_threads=1)
    run_path = train(cfg)
    obs = recorded_observations(cfg, 256)
    assert obs.dtype == np.float64           # the env's raw dtype goes in as it is
    got = export_and_run(run_path, obs, tmp_path)
    expected = agent_actions(run_path, cfg, obs)
    assert got["actions"].dtype == torch.float32 and got["actions"].shape == (256, 1)
    np.testing.assert_allclose(got["actions"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert {"norms.obs.mean", "norms.obs.var", "low", "high"} <= set(got["buffers"])
    onnx = export_and_run(run_path, obs, tmp_path, ".onnx")         # float64 in, the same actions
    np.testing.assert_allclose(onnx["actions"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert got["meta"]["normalize_obs"] and got["meta"]["action"]["low"] == [-3.0]

    # the statistics matter here: without them the same network acts differently on these observations
    state = checkpoint.load(checkpoint.latest(run_path))
    assert not np.allclose(state["obs_norm"]["mean"], 0.0) or not np.allclose(state["obs_norm"]["var"], 1.0)
    envs = make_vector_env(cfg, 1, evaluation=True)
    agent = Agent(envs.single_observation_space, envs.single_action_space, cfg)
    envs.close()
    agent.load_state_dict(state["agent"])
    raw = agent.act(torch.as_tensor(obs, dtype=torch.float32), deterministic=True)["action"].numpy()
    assert not np.allclose(raw, got["actions"].numpy(), atol=1e-4)


@pytest.mark.slow
def test_atari_export_takes_uint8_frames(tmp_path):
    cfg = tiny(config.atari, tmp_path, name="pong", num_envs=1, num_steps=32, minibatch_size=32, epochs=1,
               eval_episodes=0, vector_env="sync", torch_threads=1)
    run_path = train(cfg)
    obs = recorded_observations(cfg, 48)
    assert obs.dtype == np.uint8 and obs.shape == (48, 4, 84, 84)
    got = export_and_run(run_path, obs, tmp_path)
    expected = agent_actions(run_path, cfg, obs)
    assert got["actions"].dtype == torch.int64
    assert np.array_equal(got["actions"].numpy(), expected)
    assert "observation uint8[B, 4, 84, 84]" in got["line"]


# ------------------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2
# ------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("export-bad")
    return train(tiny(config.classic, tmp, name="cartpole", eval_episodes=0, torch_threads=1))


def one_error_line(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        export.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    return err


def test_bad_input_is_one_line(cartpole_run, tmp_path, capsys):
    assert "--out" in one_error_line(capsys, [str(cartpole_run)])
    assert "does not exist" in one_error_line(capsys, [str(tmp_path / "nope"), "--out", str(tmp_path / "p.pt2")])
    assert "no config.json" in one_error_line(capsys, [str(tmp_path), "--out", str(tmp_path / "p.pt2")])
    assert "is a directory" in one_error_line(capsys, [str(cartpole_run), "--out", str(tmp_path), "--format", "pt2"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    err = one_error_line(capsys, [str(cartpole_run), "--out", str(tmp_path / "p.pt2"), "--checkpoint", str(junk)])
    assert "corrupt" in err and "junk.pt" in err
    assert not (tmp_path / "p.pt2").exists()
    # the format: from the suffix, or --format; either way one of pt2, onnx
    err = one_error_line(capsys, [str(cartpole_run), "--out", str(tmp_path / "p.pt")])
    assert "suffix" in err and "pt2 (.pt2)" in err and "onnx (.onnx)" in err
    err = one_error_line(capsys, [str(cartpole_run), "--out", str(tmp_path / "p.pt2"), "--format", "torchscript"])
    assert "'torchscript' is not one of pt2, onnx" in err
    assert not list(tmp_path.glob("p.*"))


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text(json.dumps(config.classic().to_dict()))
    res = subprocess.run([sys.executable, "-m", "ppo_pipeline.export", str(tmp_path / "run"), "--out",
                          str(tmp_path / "p.pt2")], capture_output=True, text=True, env=ENV, timeout=120)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"error: RUN_DIR {str(tmp_path / 'run')!r} has no checkpoint-*.pt "
                                       f"(the run wrote none yet)"]
