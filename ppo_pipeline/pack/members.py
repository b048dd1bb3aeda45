"""A pack's members as runs, and the pack's own directory.

Each member's directory is a solo run's: ``config.json``, ``metrics.csv``, ``episodes.csv``, TensorBoard,
``summary.json`` and its checkpoints in the solo format (written by the one trainer,
:class:`ppo_pipeline.run.trainer.Trainer`), so ``--resume``, ``report``, ``play`` and ``export`` take a member's
directory as any run's. ``member.json`` says which pack it trained in. The pack's directory holds ``pack.json``:
its members (directories relative to the pack's), the last update at which every live member's checkpoint was
written (what ``sweep resume`` continues the pack from), the members that failed, and the time split.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import rundir
from ..config import Config

MEMBER = "member.json"
PACK = "pack.json"
PACK_FORMAT = "ppo-pipeline/pack/v2"


def write_pack_files(pack_dir: Path, members: Sequence[Config]) -> None:
    """``pack.json`` (members, their directories relative to the pack's) and each member's ``member.json``; the
    checkpoint mark and failed members of a ``pack.json`` of the same members are kept (the ranks of a pack over
    ranks read it to resume while rank 0 writes it)."""
    pack_dir.mkdir(parents=True, exist_ok=True)
    names = [m.run_name() for m in members]
    before = read_pack(pack_dir)
    kept = before if before.get("members") == names else {}
    rundir.write_json(
        pack_dir / PACK,
        {
            "format": PACK_FORMAT,
            "members": names,
            "run_dirs": [_rel(m.run_path(), pack_dir) for m in members],
            "checkpoint": kept.get("checkpoint"),
            "failed": kept.get("failed") or {},
        },
    )
    for p, m in enumerate(members):
        rundir.write_json(
            m.run_path() / MEMBER, {"pack": _rel(pack_dir, m.run_path()), "member": p, "members": len(members)}
        )


def _rel(path: Path, start: Path) -> str:
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


def mark_checkpoint(pack_dir: Path, update: int, failed: dict[str, str]) -> None:
    """Every live member's checkpoint of ``update`` is written: the pack resumes from there (a crash while the
    members' checkpoints were being written leaves the previous update marked, whose checkpoints are kept)."""
    path = pack_dir / PACK
    rundir.write_json(path, {**rundir.read_json(path), "checkpoint": update, "failed": dict(failed)})


def write_timing(pack_dir: Path, total: dict[str, float], first_update: dict[str, float]) -> None:
    """The pack's time split into its ``pack.json``: ``timing_s`` (this process's seconds per phase) and
    ``timing_steady_s``, the same without its first update, which compiles (the steady state's split; the pack
    bench prints it)."""
    path = pack_dir / PACK
    rundir.write_json(
        path,
        {
            **rundir.read_json(path),
            "timing_s": total,
            "timing_steady_s": {k: round(total[k] - first_update[k], 3) for k in total},
        },
    )


def read_pack(pack_dir: Path) -> dict[str, Any]:
    return rundir.read_json(pack_dir / PACK)
