"""Export a run's deterministic policy as a ``torch.export`` program (``.pt2``) or an ONNX model (``.onnx``).

::

    python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out hopper.pt2     # torch.export (the default)
    python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out hopper.onnx    # ONNX: pip install -e ".[onnx]"
    python -c "import torch; pi = torch.export.load('hopper.pt2').module(); print(pi(torch.zeros(1, 11, dtype=torch.float64)))"
    python -c "import numpy as np, onnxruntime as ort; s = ort.InferenceSession('hopper.onnx'); print(s.run(None, {'obs': np.zeros((1, 11))}))"

The format is ``--format pt2|onnx``, or the ``--out`` suffix (``.pt2``, ``.onnx``). The program maps a batch of
*raw* env observations to the actions the env takes (any batch size B; :mod:`.exported` builds it):

* in: ``obs [B, *obs_shape]`` in the env's observation dtype (fixed in the program): ``uint8`` pixels for
  Atari (the stacked 84x84 frames), ``float64`` from MuJoCo, ...; for a ``Dict`` observation space the same
  dict of tensors the env gives (its keys, ``action_mask`` included when the env masks actions; in ONNX one
  input per key, named by the key); with ``--policy lstm`` also the LSTM state: ``action, h, c = policy(obs,
  h, c)``, ``h, c`` [layers, B, H] zeros at each episode start (ONNX: inputs ``h``, ``c``, outputs
  ``action``, ``h_next``, ``c_next``);
* observation normalization folded in, when the run used it: the collector's own
  :func:`~ppo_pipeline.algo.normalize.standardize` in float64, with the run's *frozen* training statistics
  (per vector entry of a ``Dict``);
* out: the policy head's ``mode`` (:mod:`ppo_pipeline.algo.distributions`): ``Discrete`` -> ``int64 [B]``,
  the argmax of the (allowed) logits; ``MultiDiscrete`` -> ``int64 [B, K]``; ``MultiBinary`` -> ``float32
  [B, n]``; ``Box`` -> ``float32 [B, A]``, the Gaussian mean clipped to the action bounds (what
  :func:`~ppo_pipeline.algo.spaces.env_action` sends to the env).

The file carries ``ppo_pipeline.json`` (env id, spaces, checkpoint, the LSTM state's shape):
``torch.export.load(path, extra_files={"ppo_pipeline.json": ""})``, or the ONNX model's metadata
(``onnxruntime``: ``session.get_modelmeta().custom_metadata_map["ppo_pipeline.json"]``).

No TorchScript: every policy kind (feed-forward and LSTM, Box and ``Dict`` observations, masks, every action
space) goes through ``torch.export``, whose trace keeps the dtype branches right because the observation
dtype is the env's and fixed, so the deprecated ``torch.jit.script`` is no longer needed. (The
``@torch.jit.export``/``ignore`` marks left on the heads in :mod:`ppo_pipeline.algo.distributions` are inert.)

Before reporting success the written file is loaded back (``torch.export.load``, or onnxruntime) and checked
against the agent on a real observation. Bad input prints one line ``error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
import torch

from ..cli import OneLineParser, fail
from ..errors import UserError
from .exported import ExportedModule, exported_module, onnx_program, program
from .play import SavedRun, build_agent, frozen_obs_norm, load_saved_run

if TYPE_CHECKING:  # annotations only; the network modules load when a policy is built
    from ..algo.policy import Agent

FORMAT = "ppo-pipeline/policy/v2"
META_FILE = "ppo_pipeline.json"


# ------------------------------------------------------------------------------------------------------
# Building (the modules and programs themselves: ppo_pipeline.tools.exported)
# ------------------------------------------------------------------------------------------------------
FORMATS = {"pt2": ".pt2", "onnx": ".onnx"}  # --format -> its suffix
ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")  # the `onnx` extra


def describe(run: SavedRun, agent: Agent, obs_space: gym.Space, action_space: gym.Space, fmt: str) -> dict[str, Any]:
    """The metadata stored with the file (``ppo_pipeline.json``) of ``run``'s ``agent`` exported as ``fmt``."""
    if isinstance(action_space, gym.spaces.Discrete):
        action = {"kind": "discrete", "n": int(action_space.n), "dtype": "int64", "shape": []}
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        action = {
            "kind": "multi_discrete",
            "nvec": action_space.nvec.tolist(),
            "dtype": "int64",
            "shape": list(action_space.shape),
        }
    elif isinstance(action_space, gym.spaces.MultiBinary):
        action = {"kind": "multi_binary", "dtype": "float32", "shape": list(action_space.shape)}
    else:
        assert isinstance(action_space, gym.spaces.Box)  # check_spaces: the last kind the agent acts on
        action = {
            "kind": "box",
            "dtype": "float32",
            "shape": list(action_space.shape),
            "low": np.asarray(action_space.low, dtype=np.float64).tolist(),
            "high": np.asarray(action_space.high, dtype=np.float64).tolist(),
        }
    lstm = agent.lstm.lstm if agent.recurrent else None
    return {
        "format": FORMAT,
        "env_id": run.cfg.env_id,
        "checkpoint": str(run.checkpoint),
        "update": int(run.state["update"]),
        "normalize_obs": bool(run.cfg.normalize_obs),
        "observation": _space_meta(obs_space),
        "recurrent": bool(agent.recurrent),
        "lstm_state": {"layers": lstm.num_layers, "hidden": lstm.hidden_size} if lstm is not None else None,
        "action": action,
        "exported_with": EXPORTERS[fmt],
        "torch": torch.__version__,
    }


EXPORTERS = {"pt2": "torch.export", "onnx": "torch.onnx.export(dynamo=True)"}


def _space_meta(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Dict):
        return {"dict": {k: _space_meta(s) for k, s in space.spaces.items()}}
    assert space.shape is not None  # a Box, or a Dict's Box or MultiBinary entry (check_spaces)
    return {"shape": list(space.shape), "dtype": str(space.dtype)}


def save(module: ExportedModule, obs_space: gym.Space, out: Path, fmt: str, meta: dict[str, Any]) -> None:
    """``module`` through ``torch.export`` (and ONNX for ``fmt == "onnx"``), written atomically to ``out`` (temp
    file + rename) with ``meta`` (an extra file of the ``.pt2``, a metadata entry of the ONNX model)."""
    exported = program(module, obs_space)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{FORMATS[fmt]}")  # torch.export.save wants a .pt2 name
    try:
        if fmt == "onnx":
            onnx = onnx_program(exported, obs_space, bool(meta["recurrent"]))
            onnx.model.metadata_props[META_FILE] = json.dumps(meta, indent=2)
            onnx.save(str(tmp))
        else:
            torch.export.save(exported, str(tmp), extra_files={META_FILE: json.dumps(meta, indent=2)})
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def run_file(out: Path, fmt: str, inputs: tuple) -> list[np.ndarray]:
    """Run the written file on ``inputs`` (torch tensors, as :func:`~.exported.example_inputs`): its outputs."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        feed = dict(inputs[0]) if isinstance(inputs[0], dict) else {"obs": inputs[0]}  # exported.input_names
        feed.update(zip(("h", "c"), inputs[1:]))
        return session.run(None, {k: x.numpy() for k, x in feed.items()})
    got = torch.export.load(str(out)).module()(*inputs)
    return [t.numpy() for t in (got if isinstance(got, tuple) else (got,))]


def check_exported(out: Path, fmt: str, agent: Agent, obs_norm: Any, action_space: gym.Space, obs: Any) -> None:
    """Load ``out`` back and compare its actions on ``obs`` with the agent's own; RuntimeError if they differ."""
    from ..algo.evaluation import AgentPolicy

    expected = AgentPolicy(agent, obs_norm, action_space, deterministic=True)(obs)
    x = (
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in obs.items()}
        if isinstance(obs, dict)
        else torch.from_numpy(np.ascontiguousarray(obs))
    )
    state = (
        ()
        if not agent.recurrent
        else tuple(torch.zeros(agent.lstm.lstm.num_layers, len(expected), agent.lstm.lstm.hidden_size) for _ in "hc")
    )
    got = run_file(out, fmt, (x, *state))[0]
    same = (
        np.allclose(got, expected, rtol=1e-5, atol=1e-6)
        if isinstance(action_space, gym.spaces.Box)
        else np.array_equal(got, expected)
    )
    if not same:
        raise RuntimeError(f"exported policy {str(out)!r} disagrees with the agent: {got} vs {expected}")


def export(run: SavedRun, out: Path, fmt: str = "pt2") -> str:
    """Write ``run``'s deterministic policy to ``out`` in format ``fmt`` (``pt2``: torch.export, ``onnx``);
    returns the one-line description."""
    from ..envs import make_vector_env

    envs = make_vector_env(run.cfg, 1, evaluation=True)
    try:
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        obs, _ = envs.reset(seed=[0])
    finally:
        envs.close()
    agent = build_agent(run, obs_space, action_space, "cpu")
    norm = frozen_obs_norm(run, obs_space)
    save(
        exported_module(agent, norm, action_space),
        obs_space,
        out,
        fmt,
        describe(run, agent, obs_space, action_space, fmt),
    )
    check_exported(out, fmt, agent, norm, action_space, obs)
    prep = "normalized inside with the run's frozen statistics" if norm is not None else "no normalization"
    if isinstance(action_space, gym.spaces.Discrete):
        act = f"action int64[B] (argmax of {action_space.n} logits" + (
            " allowed by action_mask)" if agent.masked else ")"
        )
    elif isinstance(action_space, gym.spaces.MultiDiscrete):
        act = f"action int64[B, {len(action_space.nvec)}] (argmax of each part)"
    elif isinstance(action_space, gym.spaces.MultiBinary):
        act = f"action float32[B, {action_space.n}] (1 where the logit > 0)"
    else:
        act = (
            f"action float32[B, {int(np.prod(action_space.shape))}] (Gaussian mean clipped to "
            f"[{_bounds(action_space.low)}, {_bounds(action_space.high)}])"
        )
    state = (
        (
            f" with the LSTM state (h, c) in and out: policy(obs, h, c), h = c = zeros[{agent.lstm.lstm.num_layers}, B, "
            f"{agent.lstm.lstm.hidden_size}] at an episode start"
        )
        if agent.recurrent
        else ""
    )
    kind = "ONNX (torch.onnx.export, dynamo)" if fmt == "onnx" else "torch.export program"
    return (
        f"wrote {out}: {kind} deterministic policy of {run.cfg.env_id} from "
        f"{run.checkpoint.name} (update {run.state['update']}): observation {_obs_words(obs_space)} "
        f"({prep}) -> {act}{state}"
    )


def _obs_words(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Dict):
        return "dict {" + ", ".join(f"{k!r}: {_obs_words(s)}" for k, s in space.spaces.items()) + "}"
    assert space.shape is not None  # a Box, or a Dict's Box or MultiBinary entry (check_spaces)
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
    p.add_argument(
        "--out",
        metavar="FILE",
        required=True,
        help="file to write, policy.pt2 (torch.export) or policy.onnx (ONNX) (required)",
    )
    p.add_argument(
        "--format",
        metavar="FORMAT",
        default=None,
        help="pt2 (torch.export) or onnx (needs pip install -e '.[onnx]') (default: from --out's suffix)",
    )
    p.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="checkpoint to export (default: the newest checkpoint-*.pt in RUN_DIR)",
    )
    return p


def output_path(text: str) -> Path:
    """``--out`` as a path whose folder exists (created); :class:`UserError` for a folder or an unwritable place."""
    out = Path(text)
    if out.is_dir():
        raise UserError(f"--out {text!r} is a directory; give a file name such as {str(out / 'policy.pt2')!r}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"--out {text!r}: its folder cannot be created ({e.strerror or type(e).__name__})") from None
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise UserError(f"--out {text!r}: folder {str(out.parent)!r} is not writable")
    return out


def output_format(fmt: str | None, out: str) -> str:
    """``--format``, or the format ``--out``'s suffix names; :class:`UserError` naming the allowed values otherwise.
    ``onnx`` also needs the ``onnx`` extra installed."""
    allowed = ", ".join(f"{f} ({s})" for f, s in FORMATS.items())
    if fmt is None:
        fmt = next((f for f, suffix in FORMATS.items() if out.lower().endswith(suffix)), None)
        if fmt is None:
            raise UserError(
                f"--out {out!r}: cannot tell the format from its suffix; use one of {allowed} or give --format"
            )
    elif fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt == "onnx":
        import importlib.util

        missing = [m for m in ONNX_MODULES if importlib.util.find_spec(m) is None]
        if missing:
            raise UserError(f"--format onnx needs {', '.join(missing)}: pip install -e '.[onnx]'")
    return fmt


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the file was written, 2 for bad input, 130 on Ctrl-C."""
    try:
        ns = build_parser().parse_args(argv)
        try:
            fmt = output_format(ns.format, ns.out)
            run = load_saved_run(ns.run_dir, ns.checkpoint)
            out = output_path(ns.out)
            line = export(run, out, fmt)
        except UserError as e:
            fail(str(e))
        print(line)
        return 0
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: nothing written\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
