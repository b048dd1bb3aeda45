"""Checkpoints: the full training state, written atomically (temp file + rename), the last 2 kept.

A checkpoint is a ``torch.save`` dict with a ``format`` marker; :func:`load` refuses anything else
with one line naming the file. The state that is not a module's ``state_dict`` is captured here too:
the random number generators (:func:`capture_rng`) and the envs (:func:`snapshot_envs`). torch is imported by
the functions that use it: a sweep's plan (``--dry-run``, ``sweep status``) reads the checkpoints' names only.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeGuard

import gymnasium as gym
import numpy as np

from ..config import Config
from ..errors import UserError

FORMAT = "ppo-pipeline/checkpoint/v1"
_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")


class CheckpointError(UserError):
    """A checkpoint that cannot be used; the message names the file."""


def path_for(run_path: Path, update: int) -> Path:
    return run_path / f"checkpoint-{update:08d}.pt"


def save(run_path: Path, update: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` for ``update`` atomically and delete all but the newest ``keep`` checkpoints."""
    import torch

    final = path_for(run_path, update)
    tmp = final.with_name(final.name + ".tmp")
    torch.save({"format": FORMAT, "update": update, **state}, tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    for old in all_checkpoints(run_path)[:-keep]:
        old.unlink(missing_ok=True)
    return final


def all_checkpoints(run_path: Path) -> list[Path]:
    if not run_path.is_dir():
        return []
    return sorted(p for p in run_path.iterdir() if _NAME.match(p.name))


def latest(run_path: Path) -> Path | None:
    found = all_checkpoints(run_path)
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """Load a checkpoint or raise :class:`CheckpointError` naming the file and what is wrong."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist") from None
    except Exception as e:  # truncated file, not a torch file, unpickling error ...
        raise CheckpointError(f"checkpoint {str(path)!r} is corrupt or unreadable ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {str(path)!r} is not a ppo-pipeline checkpoint")
    return state


# Config fields that make a run what it is: a checkpoint whose values differ is another run's. Other
# fields (lr, total_steps, ...) may be edited in config.json before --resume: "its config.json wins".
IDENTITY_FIELDS = (
    "env_id",
    "objective",
    "seed",
    "num_envs",
    "hidden_sizes",
    "shared_trunk",
    "policy",
    "lstm_hidden",
    "normalize_obs",
    "scale_reward",
    "frame_stack",
)
REQUIRED_KEYS = ("config", "agent", "optimizer", "loss", "rng", "collector", "logger", "update")


def previous_intact(path: Path, config: dict[str, Any]) -> Path | None:
    """The newest checkpoint older than ``path`` in its folder that loads and belongs to the run."""
    for older in reversed([p for p in all_checkpoints(path.parent) if p.name < path.name]):
        try:
            load_for_run(older, config)
            return older
        except CheckpointError:
            continue
    return None


def discard_newer(path: Path) -> None:
    """Resuming from ``path``: rename the checkpoints newer than it to ``*.discarded`` (they are ahead of
    the run's new history, and a corrupt one would otherwise be picked as the newest again)."""
    for newer in [p for p in all_checkpoints(path.parent) if p.name > path.name]:
        newer.rename(newer.with_name(newer.name + ".discarded"))


def load_for_run(path: Path, config: dict[str, Any]) -> dict[str, Any]:
    """:func:`load` and check that the checkpoint is complete and belongs to the run of ``config``.

    A checkpoint of another run (other env, seed, objective, network, ...) or one missing part of
    the training state raises :class:`CheckpointError` naming the file and the first difference.
    """
    state = load(path)
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {str(path)!r} is incomplete (no {', '.join(missing)})")
    # a field the checkpoint's config predates has its default there (e.g. policy: mlp)
    theirs = {**Config().to_dict(), **(state["config"] if isinstance(state["config"], dict) else {})}
    diffs = [k for k in IDENTITY_FIELDS if k in config and theirs.get(k) != config[k]]
    if diffs:
        k = diffs[0]
        raise CheckpointError(
            f"checkpoint {str(path)!r} belongs to another run "
            f"({k}={theirs.get(k)!r} there, {config[k]!r} in this run's config)"
        )
    return state


# ------------------------------------------------------------------------------------------------------
# State that is not a state_dict: random number generators and envs
# ------------------------------------------------------------------------------------------------------
def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def capture_rng() -> dict[str, Any]:
    """The state of the process's global generators: torch (CPU and CUDA), numpy, Python (a run's own draws
    come from its generators, kept beside: :meth:`ppo_pipeline.algo.ppo.PPO.member_state`)."""
    import torch

    return {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng` (the generators a checkpoint holds: a pack member's of earlier versions
    held none of the global ones)."""
    import torch

    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def snapshottable(envs: Any) -> TypeGuard[gym.vector.SyncVectorEnv]:
    """In-process envs whose state pickling keeps: not subprocess envs or envpool, and not pybullet's (a Bullet
    env's physics lives in its physics-server connection, which a pickle drops: the env comes back unconnected)."""
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        return False
    return not any(type(e.unwrapped).__module__.startswith("pybullet") for e in envs.envs)


def snapshot_envs(envs: gym.vector.VectorEnv, start: int = 0, stop: int | None = None) -> dict[str, Any] | None:
    """The state of the in-process envs ``start:stop`` of ``envs`` (a pack member's share), for an exact resume;
    None where it can't be taken (subprocess envs, envpool).

    The sub-envs are pickled whole (wrappers keep their counters: time limits, episode statistics,
    lives). Pickling is not enough for envs that pickle by their constructor arguments (gymnasium's
    ``EzPickle``: MuJoCo envs come back at their initial pose, unseeded), so each sub-env's random
    generator and, for MuJoCo, the simulator's full integration state (time, qpos, qvel, act, warm
    start, controls, ...: ``mj_getState(mjSTATE_INTEGRATION)``) are kept beside it.
    """
    if not snapshottable(envs):
        return None
    sub = list(envs.envs[start:stop])
    try:
        import cloudpickle

        blob = cloudpickle.dumps(sub)
    except Exception:
        return None
    return {"envs": blob, "sims": [_sim_state(e.unwrapped) for e in sub]}


def restore_envs(snapshots: list[Any], rows: Any = None, members: int = 1) -> gym.vector.VectorEnv:
    """Inverse of :func:`snapshot_envs`: one vector env of the snapshots' envs, in order (checkpoints of earlier
    versions: a pickled vector env, or its bytes); ``rows`` (a rank's :class:`~ppo_pipeline.algo.ranks.RowShare`):
    of each of the ``members``' envs (member-major), these rows alone."""
    sub: list[gym.Env] = []
    for snapshot in snapshots:
        if isinstance(snapshot, bytes):  # checkpoints written before the simulator state was kept
            return pickle.loads(snapshot)
        if "pickle" in snapshot:  # before members: the vector env whole
            envs = pickle.loads(snapshot["pickle"])
            for env, state in zip(envs.envs, snapshot["sims"]):
                _set_sim_state(env.unwrapped, state)
            return envs
        restored = pickle.loads(snapshot["envs"])
        for env, state in zip(restored, snapshot["sims"]):
            _set_sim_state(env.unwrapped, state)
        sub.extend(restored)
    if rows is not None:
        per = len(sub) // members
        keep = [i for i in range(len(sub)) if rows.start <= i % per < rows.stop]
        for i in sorted(set(range(len(sub))) - set(keep)):
            sub[i].close()
        sub = [sub[i] for i in keep]
    return gym.vector.SyncVectorEnv([_given(e) for e in sub], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


def _given(env: gym.Env) -> Callable[[], gym.Env]:
    """An env factory that hands back ``env`` (a restored env goes into the vector env as it is)."""
    return lambda: env


def _sim_state(env: gym.Env) -> dict[str, Any]:
    state: dict[str, Any] = {"np_random": env.np_random.bit_generator.state if env._np_random is not None else None}
    if hasattr(env, "model") and hasattr(env, "data"):  # a MuJoCo env
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        sim = np.empty(mujoco.mj_stateSize(env.model, spec))
        mujoco.mj_getState(env.model, env.data, sim, spec)
        state["mujoco"] = sim
    return state


def _set_sim_state(env: gym.Env, state: dict[str, Any]) -> None:
    if state["np_random"] is not None:
        env.np_random.bit_generator.state = state["np_random"]
    if "mujoco" in state:
        import mujoco

        assert hasattr(env, "model") and hasattr(env, "data")  # _sim_state keeps "mujoco" for a MuJoCo env only
        mujoco.mj_setState(env.model, env.data, state["mujoco"], mujoco.mjtState.mjSTATE_INTEGRATION)
