"""The config a run starts from: lookups and the checks that need this machine, before anything starts.

:func:`ppo_pipeline.config.validate` checks values on their own (no imports of the layers above, no I/O);
here the env id is looked up (``Pong`` -> ``ALE/Pong-v5``, users' modules imported) and decided once into
:class:`~ppo_pipeline.envs.ids.EnvSpec` (its family and backend, :func:`ppo_pipeline.envs.spec_of`: what the
later stages read), the device resolved, and the run folder, W&B and the Atari recipe's scope checked. Every failure is one
:class:`~ppo_pipeline.errors.ConfigError` line.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

from .. import envs
from ..config import Config, check_device_spec, validate
from ..errors import ConfigError
from . import tracking


def resolve(cfg: Config) -> Config:
    """A copy with the env id looked up (the device as given: :func:`resolve_device`). Raises
    :class:`ConfigError` for an unknown id."""
    return dataclasses.replace(cfg, env_id=envs.resolve_id(cfg.env_id, cfg.env_module))


def prepare(cfg: Config, *, atari_only: bool = False, device: bool = True) -> Config:
    """:func:`resolve`, then :func:`~ppo_pipeline.config.validate` and the machine's checks: the config a
    run starts from (``device=False``: left for the node that runs it to resolve, e.g. a SLURM job)."""
    out = resolve(cfg)
    spec = envs.spec_of(out)  # what the env id is, decided here once
    if atari_only and not spec.is_atari:
        raise ConfigError(
            f"env_id {out.env_id!r} is not an Atari game; the Atari recipe takes ALE ids such as "
            f"ALE/Pong-v5 (use recipes/mujoco.py or recipes/classic_control.py)"
        )
    validate(out)  # (before the device: a refused value costs no import of torch)
    if device:
        out.device = resolve_device(cfg.device)
    if device and out.dist_backend == "nccl" and not out.device.startswith("cuda"):
        raise ConfigError(
            f"dist_backend=nccl needs CUDA devices (device={out.device}); use --dist-backend gloo or auto"
        )
    if out.track:
        tracking.check_available()
    check_writable(Path(out.run_dir))
    return out


def check_envs(cfg: Config) -> None:
    """Raise :class:`ConfigError` (one line) when ``cfg``'s envs cannot be built here or have spaces the agent
    cannot handle (a Tuple, a Dict entry that is no Box, ...): the env backend's checks, then one env's spaces
    (built once per env stack)."""
    import gymnasium as gym

    envs.check(cfg)
    if not envs.spec_of(cfg).is_atari:  # Atari's stack is ours: Box frames and Discrete actions, always
        from ..algo.kinds import check_spaces

        observation_space, action_space = envs.spaces(cfg)
        check_spaces(observation_space, action_space, env_id=cfg.env_id)
        if cfg.collector == "torchrl" and isinstance(observation_space, gym.spaces.Dict):
            raise ConfigError(
                f"{cfg.env_id}: a Dict observation space needs --collector lean (torchrl's collector here takes "
                f"Box observations); drop --collector torchrl"
            )


def resolve_device(spec: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; an explicit CUDA device must exist."""
    import torch

    check_device_spec(spec)
    spec = spec.strip().lower()
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"device={spec!r} was asked for but no CUDA device exists here; use --device cpu or auto")
    idx = spec.partition(":")[2]
    if idx and int(idx) >= torch.cuda.device_count():
        raise ConfigError(f"device={spec!r}: only {torch.cuda.device_count()} CUDA device(s) exist")
    return spec


def check_writable(path: Path) -> None:
    """Raise :class:`ConfigError` unless a folder can be made below ``path`` (probed with a temp folder
    in its nearest existing ancestor, which is removed again)."""
    probe = path.absolute()
    while not probe.exists():
        probe = probe.parent
    try:
        if not probe.is_dir():
            raise OSError
        tempfile.TemporaryDirectory(dir=probe, prefix=".ppo-probe-").cleanup()
    except OSError:
        raise ConfigError(f"run_dir={str(path)!r} is not writable ({str(probe)!r} cannot be written)") from None


def budget_line(cfg: Config) -> str:
    """One line saying exactly what the run trains, e.g. for Atari
    ``10,000,384 agent steps (40,001,536 frames) = 9,766 updates of 8 envs x 128 steps (10,000,000 asked)``."""
    frames = f" ({cfg.steps_run * cfg.frame_skip:,} frames)" if envs.spec_of(cfg).is_atari else ""
    asked = "" if cfg.steps_run == cfg.total_steps else f" ({cfg.total_steps:,} asked, rounded up to whole batches)"
    return (
        f"{cfg.env_id}: {cfg.steps_run:,} agent steps{frames} = {cfg.num_updates:,} updates of "
        f"{cfg.num_envs} envs x {cfg.num_steps} steps{asked}"
    )
