"""Export a run's deterministic policy as a TorchScript file that needs nothing but torch.

::

    python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out hopper.pt
    python -c "import torch; pi = torch.jit.load('hopper.pt'); print(pi(torch.zeros(1, 11, dtype=torch.float64)))"

The module maps a batch of *raw* env observations to the actions the env takes:

* in: ``obs [B, *obs_shape]`` in the env's observation dtype: ``uint8`` pixels for Atari (the stacked
  84x84 frames), floats for vectors (float64 from MuJoCo, float32 works too); for a ``Dict`` observation
  space the same dict of tensors the env gives (its keys, ``action_mask`` included when the env masks
  actions); with ``--policy lstm`` also the LSTM state: ``action, h, c = policy(obs, h, c)``, starting each
  episode from ``h, c = policy.initial_state(B)`` (:mod:`.exported`);
* observation normalization folded in, when the run used it: the collector's own
  :func:`~ppo_pipeline.algo.normalize.standardize` in float64, with the run's *frozen* training statistics
  as buffers (per vector entry of a ``Dict``);
* out: the policy head's ``mode`` (:mod:`ppo_pipeline.algo.distributions`): ``Discrete`` -> ``int64 [B]``,
  the argmax of the (allowed) logits; ``MultiDiscrete`` -> ``int64 [B, K]``; ``MultiBinary`` -> ``float32
  [B, n]``; ``Box`` -> ``float32 [B, A]``, the Gaussian mean clipped to the action bounds (what
  :func:`~ppo_pipeline.algo.spaces.env_action` sends to the env).

``torch.jit.script``, not ``trace``: the module branches on the input's dtype (uint8 pixels go to the CNN
as they are, float observations are cast), and a trace would freeze the branch of its one example input;
a script keeps the code, needs no example observation, and any batch size works. The file also carries
``ppo_pipeline.json`` (env id, spaces, checkpoint) as an extra file:
``torch.jit.load(path, _extra_files={"ppo_pipeline.json": ""})``.

Before reporting success the written file is loaded back and checked against the agent on a real
observation. Bad input prints one line ``error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..run.cli import OneLineParser, fail
from .exported import exported_module
from .play import SavedRun, build_agent, frozen_obs_norm, load_saved_run

FORMAT = "ppo-pipeline/policy/v1"
META_FILE = "ppo_pipeline.json"


# ------------------------------------------------------------------------------------------------------
# Building (the modules themselves: ppo_pipeline.tools.exported)
# ------------------------------------------------------------------------------------------------------
def policy_module(agent: nn.Module, obs_norm: Any, action_space: gym.Space) -> nn.Module:
    """The deterministic policy of ``agent`` (a :class:`~ppo_pipeline.algo.policy.Agent`) as a plain
    ``nn.Module`` on the CPU, ``obs_norm``'s statistics folded in (:func:`~.exported.exported_module`)."""
    return exported_module(agent, obs_norm, action_space)


def describe(run: SavedRun, obs_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """The metadata stored with the file (``ppo_pipeline.json``)."""
    if isinstance(action_space, gym.spaces.Discrete):
        action = {"kind": "discrete", "n": int(action_space.n), "dtype": "int64", "shape": []}
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        action = {"kind": "multi_discrete", "nvec": action_space.nvec.tolist(), "dtype": "int64",
                  "shape": list(action_space.shape)}
    elif isinstance(action_space, gym.spaces.MultiBinary):
        action = {"kind": "multi_binary", "dtype": "float32", "shape": list(action_space.shape)}
    else:
        action = {"kind": "box", "dtype": "float32", "shape": list(action_space.shape),
                  "low": np.asarray(action_space.low, dtype=float).tolist(),
                  "high": np.asarray(action_space.high, dtype=float).tolist()}
    return {"format": FORMAT, "env_id": run.cfg.env_id, "checkpoint": str(run.checkpoint),
            "update": int(run.state["update"]), "normalize_obs": bool(run.cfg.normalize_obs),
            "observation": _space_meta(obs_space), "recurrent": run.cfg.policy == "lstm",
            "action": action, "scripted_with": "torch.jit.script", "torch": torch.__version__}


def _space_meta(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Dict):
        return {"dict": {k: _space_meta(s) for k, s in space.spaces.items()}}
    return {"shape": list(space.shape), "dtype": str(space.dtype)}


def save_scripted(module: nn.Module, out: Path, meta: dict[str, Any]) -> None:
    """``torch.jit.script(module)`` saved atomically to ``out`` (temp file + rename) with ``meta``."""
    scripted = torch.jit.script(module)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.jit.save(scripted, str(tmp), _extra_files={META_FILE: json.dumps(meta, indent=2)})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def check_exported(out: Path, agent: nn.Module, obs_norm: Any, action_space: gym.Space, obs: Any) -> None:
    """Load ``out`` back and compare its actions on ``obs`` with the agent's own; RuntimeError if they differ."""
    from .video import agent_policy

    expected = agent_policy(agent, obs_norm, action_space, deterministic=True)(obs)
    policy = torch.jit.load(str(out))
    x = ({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obs.items()} if isinstance(obs, dict)
         else torch.from_numpy(np.ascontiguousarray(obs)))
    got = (policy(x, *policy.initial_state(len(expected)))[0] if agent.recurrent else policy(x)).numpy()
    same = (np.allclose(got, expected, rtol=1e-5, atol=1e-6) if isinstance(action_space, gym.spaces.Box)
            else np.array_equal(got, expected))
    if not same:
        raise RuntimeError(f"exported policy {str(out)!r} disagrees with the agent: {got} vs {expected}")


def export(run: SavedRun, out: Path) -> str:
    """Write ``run``'s deterministic policy to ``out`` as TorchScript; returns the one-line description."""
    from ..envs import make_vector_env

    envs = make_vector_env(run.cfg, 1, evaluation=True)
    try:
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        obs, _ = envs.reset(seed=[0])
    finally:
        envs.close()
    agent = build_agent(run, obs_space, action_space, "cpu")
    norm = frozen_obs_norm(run, obs_space)
    save_scripted(policy_module(agent, norm, action_space), out, describe(run, obs_space, action_space))
    check_exported(out, agent, norm, action_space, obs)
    prep = "normalized inside with the run's frozen statistics" if norm is not None else "no normalization"
    if isinstance(action_space, gym.spaces.Discrete):
        act = f"action int64[B] (argmax of {action_space.n} logits" + (" allowed by action_mask)" if agent.masked else ")")
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        act = f"action int64[B, {len(action_space.nvec)}] (argmax of each part)"
    elif isinstance(action_space, gym.spaces.MultiBinary):
        act = f"action float32[B, {action_space.n}] (1 where the logit > 0)"
    else:
        act = (f"action float32[B, {int(np.prod(action_space.shape))}] (Gaussian mean clipped to "
               f"[{_bounds(action_space.low)}, {_bounds(action_space.high)}])")
    state = " with the LSTM state (h, c) in and out: policy(obs, h, c), h, c = policy.initial_state(B)" \
        if agent.recurrent else ""
    return (f"wrote {out}: TorchScript (torch.jit.script) deterministic policy of {run.cfg.env_id} from "
            f"{run.checkpoint.name} (update {run.state['update']}): observation {_obs_words(obs_space)} "
            f"({prep}) -> {act}{state}")


def _obs_words(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Dict):
        return "dict {" + ", ".join(f"{k!r}: {_obs_words(s)}" for k, s in space.spaces.items()) + "}"
    return f"{space.dtype}[{', '.join(['B', *map(str, space.shape)])}]"


def _bounds(x: np.ndarray) -> str:
    x = np.asarray(x).reshape(-1)
    return f"{x[0]:g}" if np.all(x == x[0]) else "[" + ", ".join(f"{v:g}" for v in x) + "]"


# ------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """``python -m ppo_pipeline.export``'s options."""
    p = OneLineParser(prog="python -m ppo_pipeline.export", description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory (runs/<name>) with config.json and checkpoints")
    p.add_argument("--out", metavar="FILE", required=True, help="TorchScript file to write (required)")
    p.add_argument("--checkpoint", metavar="FILE", default=None,
                   help="checkpoint to export (default: the newest checkpoint-*.pt in RUN_DIR)")
    return p


def output_path(text: str) -> Path:
    """``--out`` as a path whose folder exists (created); :class:`UserError` for a folder or an unwritable place."""
    out = Path(text)
    if out.is_dir():
        raise UserError(f"--out {text!r} is a directory; give a file name such as {str(out / 'policy.pt')!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {text!r}: its folder cannot be created ({e.strerror or type(e).__name__})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {text!r}: folder {str(out.parent)!r} is not writable")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the file was written, 2 for bad input, 130 on Ctrl-C."""
    try:
        ns = build_parser().parse_args(argv)
        try:
            run = load_saved_run(ns.run_dir, ns.checkpoint)
            out = output_path(ns.out)
            line = export(run, out)
        except UserError as e:
            fail(str(e))
        print(line)
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing written\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
