"""Export a run's deterministic policy as a TorchScript file that needs nothing but torch.

::

    python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out hopper.pt
    python -c "import torch; pi = torch.jit.load('hopper.pt'); print(pi(torch.zeros(1, 11, dtype=torch.float64)))"

The module maps a batch of *raw* env observations to the actions the env takes:

* in: ``obs [B, *obs_shape]`` in the env's observation dtype: ``uint8`` pixels for Atari (the stacked
  84x84 frames), floats for vectors (float64 from MuJoCo, float32 works too);
* observation normalization folded in, when the run used it: ``clip((obs - mean) / sqrt(var + eps), -clip,
  clip)`` computed in float64 like :class:`~ppo_pipeline.normalize.ObsNormalizer`, with ``mean``,
  ``var``, ``eps``, ``clip`` stored as buffers of the run's *frozen* training statistics;
* out: ``Discrete`` -> ``int64 [B]``, the argmax of the logits; ``Box`` -> ``float32 [B, A]``, the Gaussian
  mean clipped to the action bounds (what :func:`~ppo_pipeline.collect.env_action` sends to the env).

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

from .cli import OneLineParser, fail
from .errors import UserError
from .normalize import ObsNormalizer
from .play import SavedRun, build_agent, frozen_obs_norm, load_saved_run

FORMAT = "ppo-pipeline/policy/v1"
META_FILE = "ppo_pipeline.json"


# ------------------------------------------------------------------------------------------------------
# The exported modules (TorchScript-able, plain torch only)
# ------------------------------------------------------------------------------------------------------
class AsNetworkInput(nn.Module):
    """Observations as the collector feeds them to the network: uint8 stays uint8 (the CNN scales it),
    anything else becomes float32 (:func:`ppo_pipeline.collect.obs_tensor`)."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dtype == torch.uint8:
            return obs
        return obs.to(torch.float32)


class FrozenObsNorm(nn.Module):
    """``clip((obs - mean) / sqrt(var + eps), -clip, clip)`` in float64, returned as float32: the same
    arithmetic as :class:`~ppo_pipeline.normalize.ObsNormalizer` with ``update=False``."""

    def __init__(self, mean: np.ndarray, var: np.ndarray, eps: float, clip: float):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(np.asarray(mean), dtype=torch.float64).clone())
        self.register_buffer("var", torch.as_tensor(np.asarray(var), dtype=torch.float64).clone())
        self.register_buffer("eps", torch.tensor(float(eps), dtype=torch.float64))
        self.register_buffer("clip", torch.tensor(float(clip), dtype=torch.float64))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        x = (obs.to(torch.float64) - self.mean) / torch.sqrt(self.var + self.eps)
        return torch.clamp(x, min=-self.clip, max=self.clip).to(torch.float32)


class ArgmaxPolicy(nn.Module):
    """obs [B, *obs_shape] -> int64 [B]: argmax of ``head(trunk(prepare(obs)))``."""

    def __init__(self, prepare: nn.Module, trunk: nn.Module, head: nn.Module):
        super().__init__()
        self.prepare, self.trunk, self.head = prepare, trunk, head

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(self.prepare(obs))).argmax(-1)


class ClippedMeanPolicy(nn.Module):
    """obs [B, *obs_shape] -> float32 [B, A]: the Gaussian mean ``mean_net(trunk(prepare(obs)))`` clipped
    to the buffers ``low``/``high`` (the action space's bounds)."""

    def __init__(self, prepare: nn.Module, trunk: nn.Module, mean_net: nn.Module, low: np.ndarray, high: np.ndarray):
        super().__init__()
        self.prepare, self.trunk, self.mean_net = prepare, trunk, mean_net
        self.register_buffer("low", torch.as_tensor(np.asarray(low, dtype=np.float32).reshape(-1)).clone())
        self.register_buffer("high", torch.as_tensor(np.asarray(high, dtype=np.float32).reshape(-1)).clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        loc = self.mean_net(self.trunk(self.prepare(obs)))
        return torch.clamp(loc, min=self.low, max=self.high)


# ------------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------------
def policy_module(agent: nn.Module, obs_norm: ObsNormalizer | None, action_space: gym.Space) -> nn.Module:
    """The deterministic policy of ``agent`` (a :class:`~ppo_pipeline.models.Agent`) as a plain ``nn.Module``
    on the CPU (copies of the weights, no gradients), ``obs_norm``'s statistics folded in."""
    import copy

    agent = copy.deepcopy(agent).cpu().eval()
    prepare: nn.Module = (FrozenObsNorm(obs_norm.rms.mean, obs_norm.rms.var, obs_norm.eps, obs_norm.clip)
                          if obs_norm is not None else AsNetworkInput())
    trunk = agent.trunk if agent.shared else nn.Identity()
    if agent.discrete:
        module: nn.Module = ArgmaxPolicy(prepare, trunk, agent.policy_net)
    else:
        module = ClippedMeanPolicy(prepare, trunk, agent.policy_net.net, action_space.low, action_space.high)
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


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
    from .envs import make_vector_env

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
