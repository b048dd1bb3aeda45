"""Export a run's deterministic policy as a TorchScript file that needs nothing but torch.

::

    python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out hopper.pt
    python -c "import torch; pi = torch.jit.load('hopper.pt'); print(pi(torch.zeros(1, 11, dtype=torch.float64)))"

The module maps a batch of *raw* env observations to the actions the env takes:

* in: ``obs [B, *obs_shape]`` in the env's observation dtype: ``uint8`` pixels for Atari (the stacked
  84x84 frames), floats for vectors (float64 from MuJoCo, float32 works too);
* observation normalization folded in, when the run used it: the collector's own
  :func:`~ppo_pipeline.algo.normalize.standardize` in float64, with the run's *frozen* training statistics
  as the buffers ``obs_mean``/``obs_var``;
* out: the policy head's ``mode`` (:mod:`ppo_pipeline.algo.distributions`): ``Discrete`` -> ``int64 [B]``,
  the argmax of the logits; ``Box`` -> ``float32 [B, A]``, the Gaussian mean clipped to the action bounds
  (what :func:`~ppo_pipeline.algo.spaces.env_action` sends to the env).

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
import copy
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from ..algo.normalize import ObsNormalizer, standardize
from ..algo.spaces import clip_action, network_input
from ..errors import UserError
from ..run.cli import OneLineParser, fail
from .play import SavedRun, build_agent, frozen_obs_norm, load_saved_run

FORMAT = "ppo-pipeline/policy/v1"
META_FILE = "ppo_pipeline.json"


# ------------------------------------------------------------------------------------------------------
# The exported module (TorchScript-able, plain torch only), built from the agent's own pieces
# ------------------------------------------------------------------------------------------------------
class ExportedPolicy(nn.Module):
    """obs [B, *obs_shape] (raw, the env's dtype) -> the action the env takes, deterministically:

    observations through :func:`~ppo_pipeline.algo.normalize.standardize` with the run's frozen statistics
    (float64, as the collector computes it) or :func:`~ppo_pipeline.algo.spaces.network_input`; then the
    agent's ``trunk`` and ``policy_head``, the head's ``mode`` (:mod:`ppo_pipeline.algo.distributions`);
    ``Box`` actions through :func:`~ppo_pipeline.algo.spaces.clip_action`. Copies of the weights, no
    gradients, CPU.
    """

    def __init__(self, agent: nn.Module, obs_norm: ObsNormalizer | None, action_space: gym.Space):
        super().__init__()
        agent = copy.deepcopy(agent).cpu().eval()
        self.trunk, self.policy_head = agent.trunk, agent.policy_head
        self.normalize = obs_norm is not None
        stats = obs_norm.state_dict() if obs_norm is not None else {"mean": np.zeros(1), "var": np.ones(1)}
        self.register_buffer("obs_mean", torch.as_tensor(np.asarray(stats["mean"]), dtype=torch.float64).clone())
        self.register_buffer("obs_var", torch.as_tensor(np.asarray(stats["var"]), dtype=torch.float64).clone())
        self.obs_eps: float = float(obs_norm.eps) if obs_norm is not None else 0.0
        self.obs_clip: float = float(obs_norm.clip) if obs_norm is not None else 0.0
        self.box = isinstance(action_space, gym.spaces.Box)
        low, high = (action_space.low, action_space.high) if self.box else (np.zeros(1), np.zeros(1))
        self.register_buffer("low", torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1)).clone())
        self.register_buffer("high", torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1)).clone())
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            x = standardize(obs.to(torch.float64), self.obs_mean, self.obs_var, self.obs_eps, self.obs_clip)
            x = x.to(torch.float32)
        else:
            x = network_input(obs)
        action = self.policy_head.mode(self.policy_head(self.trunk(x)))
        if self.box:
            action = clip_action(action, self.low, self.high)
        return action


# ------------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------------
def policy_module(agent: nn.Module, obs_norm: ObsNormalizer | None, action_space: gym.Space) -> nn.Module:
    """The deterministic policy of ``agent`` (a :class:`~ppo_pipeline.algo.policy.Agent`) as a plain
    ``nn.Module`` on the CPU, ``obs_norm``'s statistics folded in (:class:`ExportedPolicy`)."""
    return ExportedPolicy(agent, obs_norm, action_space)


def describe(run: SavedRun, obs_space: gym.Space, action_space: gym.Space) -> dict[str, Any]:
    """The metadata stored with the file (``ppo_pipeline.json``)."""
    if isinstance(action_space, gym.spaces.Discrete):
        action = {"kind": "discrete", "n": int(action_space.n), "dtype": "int64", "shape": []}
    else:
        action = {"kind": "box", "dtype": "float32", "shape": list(action_space.shape),
                  "low": np.asarray(action_space.low, dtype=float).tolist(),
                  "high": np.asarray(action_space.high, dtype=float).tolist()}
    return {"format": FORMAT, "env_id": run.cfg.env_id, "checkpoint": str(run.checkpoint),
            "update": int(run.state["update"]), "normalize_obs": bool(run.cfg.normalize_obs),
            "observation": {"shape": list(obs_space.shape), "dtype": str(obs_space.dtype)},
            "action": action, "scripted_with": "torch.jit.script", "torch": torch.__version__}


def save_scripted(module: nn.Module, out: Path, meta: dict[str, Any]) -> None:
    """``torch.jit.script(module)`` saved atomically to ``out`` (temp file + rename) with ``meta``."""
    scripted = torch.jit.script(module)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        torch.jit.save(scripted, str(tmp), _extra_files={META_FILE: json.dumps(meta, indent=2)})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def check_exported(out: Path, agent: nn.Module, obs_norm: ObsNormalizer | None, action_space: gym.Space,
                   obs: np.ndarray) -> None:
    """Load ``out`` back and compare its actions on ``obs`` with the agent's own; RuntimeError if they differ."""
    from .video import agent_policy

    expected = agent_policy(agent, obs_norm, action_space, deterministic=True)(obs)
    got = torch.jit.load(str(out))(torch.from_numpy(np.ascontiguousarray(obs))).numpy()
    same = (np.array_equal(got, expected) if isinstance(action_space, gym.spaces.Discrete)
            else np.allclose(got, expected, rtol=1e-5, atol=1e-6))
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
    shape = ", ".join(["B", *map(str, obs_space.shape)])
    prep = "normalized inside with the run's frozen statistics" if norm is not None else "no normalization"
    if isinstance(action_space, gym.spaces.Discrete):
        act = f"action int64[B] (argmax of {action_space.n} logits)"
    else:
        act = (f"action float32[B, {int(np.prod(action_space.shape))}] (Gaussian mean clipped to "
               f"[{_bounds(action_space.low)}, {_bounds(action_space.high)}])")
    return (f"wrote {out}: TorchScript (torch.jit.script) deterministic policy of {run.cfg.env_id} from "
            f"{run.checkpoint.name} (update {run.state['update']}): observation {obs_space.dtype}[{shape}] "
            f"({prep}) -> {act}")


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
