"""Every policy kind ``export`` takes, written as a ``torch.export`` program (``.pt2``) and as ONNX, acts as
evaluation does on random observations: feed-forward and LSTM (state in and out, two steps), Box and ``Dict``
observations (action masks as an input, images, normalized vectors), every action space, two batch sizes.

The files are run in a *subprocess* where ``ppo_pipeline`` cannot be imported: the ``.pt2`` through
``torch.export.load(...).module()``, the ``.onnx`` through onnxruntime. The expected actions are
:class:`~ppo_pipeline.algo.evaluation.AgentPolicy`'s (evaluation's deterministic policy, carrying the LSTM
state). Writing the files raises no warning, deprecations included (``torch.jit`` is gone from export)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch

from ppo_pipeline import batch as keys
from ppo_pipeline import config
from ppo_pipeline.algo.evaluation import AgentPolicy
from ppo_pipeline.algo.normalize import make_obs_normalizer
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.tools import export
from ppo_pipeline.tools.exported import exported_module

MASKED = gym.spaces.Dict({"observation": gym.spaces.Box(0.0, 1.0, (5,), np.float32),
                          "action_mask": gym.spaces.MultiBinary(4)})
VECTOR = gym.spaces.Box(-5, 5, (4,), np.float32)
KINDS = {   # name -> (preset and its options, observation space, action space, normalized)
    "discrete": ((config.classic, {}), VECTOR, gym.spaces.Discrete(3), True),
    "box": ((config.mujoco, {}), gym.spaces.Box(-5, 5, (6,), np.float64), gym.spaces.Box(-0.4, 0.7, (2,)), True),
    "pixels": ((config.atari, {}), gym.spaces.Box(0, 255, (4, 84, 84), np.uint8), gym.spaces.Discrete(6), False),
    "multi-discrete": ((config.classic, {}), VECTOR, gym.spaces.MultiDiscrete([3, 2, 4]), False),
    "multi-binary": ((config.classic, {}), VECTOR, gym.spaces.MultiBinary(3), True),
    "masked": ((config.classic, {}), MASKED, gym.spaces.Discrete(4), False),
    "dict-image": ((config.classic, {}), gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (40, 40, 1), np.uint8),
                                                          "goal": gym.spaces.Box(-1.0, 1.0, (2,), np.float32)}),
                   gym.spaces.Discrete(4), True),
    "lstm": ((config.classic, {"policy": "lstm", "lstm_hidden": 16}), VECTOR, gym.spaces.Discrete(2), True),
    "lstm-masked": ((config.classic, {"policy": "lstm", "lstm_hidden": 16}), MASKED, gym.spaces.Discrete(4), False),
}
BATCHES = (3, 5)
STEPS = 2          # consecutive observations per batch (the LSTM carries its state from one to the next)

RUN_BOTH = r"""
import sys

class NoPipeline:
    "Refuse ppo_pipeline imports: the files must run without it."
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "ppo_pipeline":
            raise ImportError("ppo_pipeline is blocked in this process")
        return None

sys.meta_path.insert(0, NoPipeline())
import onnxruntime
import torch

results = {}
for kind in sys.argv[2:]:
    data = torch.load(f"{sys.argv[1]}/{kind}.inputs")
    policy = torch.export.load(f"{sys.argv[1]}/{kind}.pt2").module()
    session = onnxruntime.InferenceSession(f"{sys.argv[1]}/{kind}.onnx", providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    results[kind] = {"pt2": [], "onnx": []}
    for steps in data["batches"]:
        first = steps[0] if not isinstance(steps[0], dict) else next(iter(steps[0].values()))
        zeros = torch.zeros(data["layers"], len(first), data["hidden"])
        state = {"pt2": (zeros, zeros), "onnx": (zeros.numpy(), zeros.numpy())}
        for fmt in ("pt2", "onnx"):
            outs = []
            for obs in steps:
                if fmt == "pt2":
                    out = policy(obs, *state[fmt]) if data["recurrent"] else (policy(obs),)
                    out = tuple(t.detach() for t in out)
                else:
                    flat = list(obs.values()) if isinstance(obs, dict) else [obs]
                    feed = dict(zip(names, [x.numpy() for x in flat] + (list(state[fmt]) if data["recurrent"] else [])))
                    out = tuple(torch.from_numpy(x) for x in session.run(None, feed))
                state[fmt] = out[1:] if fmt == "pt2" else tuple(t.numpy() for t in out[1:])
                outs.append(out)
            results[kind][fmt].append(outs)
assert "ppo_pipeline" not in sys.modules
torch.save(results, f"{sys.argv[1]}/results.pt")
"""


def randomize(agent: Agent, seed: int) -> None:
    """Parameters away from the init (whose 0.01 policy gain makes every action nearly uniform)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in agent.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)


def random_obs(space: gym.Space, n: int, rng: np.random.Generator):
    """``n`` random observations of ``space`` as the env gives them (a dict of arrays for a ``Dict``; a mask
    allows at least one action)."""
    if isinstance(space, gym.spaces.Dict):
        return {k: random_obs(s, n, rng) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.MultiBinary):
        mask = rng.integers(0, 2, (n, space.n)).astype(space.dtype)
        mask[np.arange(n), rng.integers(0, space.n, n)] = 1
        return mask
    if space.dtype == np.uint8:
        return rng.integers(0, 256, (n, *space.shape)).astype(np.uint8)
    return rng.normal(0.0, 3.0, (n, *space.shape)).astype(space.dtype)


def as_torch(obs):
    return {k: torch.from_numpy(v) for k, v in obs.items()} if isinstance(obs, dict) else torch.from_numpy(obs)


def warning_lines(caught: list) -> list[str]:
    """Every warning caught (a deprecated API's first of all: ``torch.jit.script`` warned 52 times in a run)."""
    return [f"{w.category.__name__}: {w.message}" for w in caught]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """Each kind's files written (both formats), the expected steps, and the subprocess's results."""
    tmp = tmp_path_factory.mktemp("programs")
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    expected, warned = {}, {}
    for kind, ((preset, options), obs_space, act_space, normalized) in KINDS.items():
        agent = Agent(obs_space, act_space, preset(**options))
        randomize(agent, len(kind))
        norm = None
        if normalized:
            norm = make_obs_normalizer(obs_space, clip=10.0)
            norm(random_obs(obs_space, 500, rng))          # statistics away from (0, 1)
            norm = norm.frozen_copy()
        module = exported_module(agent, norm, act_space)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for fmt in export.FORMATS:
                export.save(module, obs_space, tmp / f"{kind}.{fmt}", fmt, {"recurrent": agent.recurrent})
        warned[kind] = warning_lines(caught)
        batches, expected[kind] = [], []
        for b in BATCHES:
            steps = [random_obs(obs_space, b, rng) for _ in range(STEPS if agent.recurrent else 1)]
            policy = AgentPolicy(agent, norm, act_space)
            outs = []
            for obs in steps:
                action = policy(obs)
                state = [policy.state[k].transpose(0, 1) for k in (keys.STATE_H, keys.STATE_C)] if agent.recurrent else []
                outs.append((action, *state))       # (action, h, c), h and c [layers, B, H]
            batches.append([as_torch(obs) for obs in steps])
            expected[kind].append(outs)
        lstm = agent.lstm.lstm if agent.recurrent else None
        torch.save({"recurrent": agent.recurrent, "batches": batches, "layers": lstm.num_layers if lstm else 0,
                    "hidden": lstm.hidden_size if lstm else 0}, tmp / f"{kind}.inputs")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", RUN_BOTH, str(tmp), *KINDS],
                         capture_output=True, text=True, env=env, timeout=600, cwd=tmp)
    assert res.returncode == 0, res.stderr[-3000:]
    return {"expected": expected, "got": torch.load(tmp / "results.pt"), "warned": warned, "dir": tmp}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_pt2_and_onnx_act_as_evaluation(exported, kind):
    act_space = KINDS[kind][2]
    assert exported["warned"][kind] == []
    for fmt in ("pt2", "onnx"):
        for b, want_steps, got_steps in zip(BATCHES, exported["expected"][kind], exported["got"][kind][fmt]):
            for want, got in zip(want_steps, got_steps):
                assert len(got) == len(want)
                action = got[0].numpy()
                assert action.shape[0] == b, (fmt, action.shape)
                if isinstance(act_space, gym.spaces.Box):
                    assert action.dtype == np.float32
                    np.testing.assert_allclose(action, want[0], rtol=1e-5, atol=1e-5, err_msg=fmt)
                else:
                    assert action.dtype == (np.float32 if isinstance(act_space, gym.spaces.MultiBinary) else np.int64)
                    np.testing.assert_array_equal(action, want[0], err_msg=fmt)
                for g, w in zip(got[1:], want[1:]):          # the LSTM state after the step: [layers, B, H]
                    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-4, atol=1e-5, err_msg=fmt)


def test_onnx_inputs_are_named_by_key(exported):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(exported["dir"] / "lstm-masked.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["action_mask", "observation", "h", "c"]   # the space's (sorted) keys
    assert [o.name for o in session.get_outputs()] == ["action", "h_next", "c_next"]
    assert session.get_inputs()[1].shape == ["batch", 5]
