"""A run directory on disk: its file names, atomic writes, and the one reader of its tables.

``runs/<name>/`` holds ``config.json``, ``metrics.csv`` (a row per update), ``episodes.csv`` (a row per
finished training episode), ``summary.json`` (when the run ended), ``checkpoint-*.pt``, ``tb/`` and,
for sweep jobs, ``job.json``. The trainer writes them (:mod:`ppo_pipeline.run.metrics`); ``sweep status``,
the report and the tests read them through :func:`read_table`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .errors import ConfigError, UserError

CONFIG = "config.json"
METRICS = "metrics.csv"
EPISODES = "episodes.csv"
SUMMARY = "summary.json"
JOB_STATE = "job.json"  # a sweep job's last state: RUNNING, FINISHED, FAILED, INTERRUPTED, REQUEUED


class BrokenRun(Exception):
    """A run directory (or one of its files) that cannot be read; the message says why."""


def write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a reader (or a crash) sees the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """:func:`write_text` of ``data`` as indented JSON."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class RunConfigError(UserError):
    """A folder whose ``config.json`` cannot be read as a run's config. ``reason`` says what is wrong
    without the folder (the report prints it beside the path)."""

    def __init__(self, run_dir: Path, what: str, reason: str):
        self.run_dir, self.reason = run_dir, reason
        sep = ": " if reason.startswith(CONFIG) else " "
        super().__init__(f"{what} {str(run_dir)!r}{sep}{reason}" if what else reason)


def read_config(run_dir: Path, what: str = "RUN_DIR") -> Config:
    """The run's config, from its ``config.json``: the one reader of that file (``--resume``, play,
    export, the report, sweeps). Strict: every value must have its field's type (someone may have edited
    the file), ``env_id`` and ``objective`` must be there. The config's ``run_dir``/``name`` point at the
    folder as given. Raises :class:`RunConfigError`, one line naming ``what`` (the option that gave the
    folder) and the folder."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunConfigError(run_dir, what, "does not exist")
    if not run_dir.is_dir():
        raise RunConfigError(run_dir, what, "is not a directory")
    path = run_dir / CONFIG
    if not path.is_file():
        raise RunConfigError(run_dir, what, f"has no {CONFIG} (not a run directory)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise RunConfigError(run_dir, what, f"{CONFIG} is not valid JSON") from None
    if not isinstance(saved, dict):
        raise RunConfigError(run_dir, what, f"{CONFIG} is not a JSON object")
    missing = [k for k in ("env_id", "objective") if k not in saved]
    if missing:
        raise RunConfigError(run_dir, what, f"{CONFIG} has no {missing[0]} (not a run's config)")
    try:
        cfg = Config.from_json(saved, CONFIG)
    except ConfigError as e:
        raise RunConfigError(run_dir, what, str(e)) from None
    cfg.run_dir, cfg.name = str(run_dir.parent), run_dir.name
    return cfg


def write_config(run_path: Path, cfg: Config) -> None:
    """Write ``run_path/config.json``: every field, plus ``steps_run`` (what the rounded-up budget trains)."""
    write_json(run_path / CONFIG, {**cfg.to_dict(), "steps_run": cfg.steps_run})


def read_table(
    path: Path, required: Sequence[str] = (), *, drop_partial_tail: bool = True, finite: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """One of our CSVs as ``{column: float array}``, parsed strictly: every cell a number or empty
    (NaN), the ``finite`` columns finite; raises :class:`BrokenRun` naming the file and the line.

    ``drop_partial_tail``: a last line without its newline is being written by a live run; drop it.
    """
    name = Path(path).name
    if not Path(path).is_file():
        raise BrokenRun(f"{name} is missing")
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise BrokenRun(f"{name} cannot be read ({e.__class__.__name__})") from None
    if not text.strip():
        raise BrokenRun(f"{name} is empty")
    lines = text.split("\n")
    if lines[-1] == "" or (drop_partial_tail and len(lines) > 1):
        lines.pop()
    header = lines[0].strip().split(",")
    missing = [c for c in required if c not in header]
    if missing:
        raise BrokenRun(f"{name} is corrupt (no column {', '.join(missing)} in its header)")
    cols: list[list[float]] = [[] for _ in header]
    for lineno, line in enumerate(lines[1:], start=2):
        cells = line.strip().split(",")
        if len(cells) != len(header):
            raise BrokenRun(f"{name} is corrupt (line {lineno} has {len(cells)} fields, the header {len(header)})")
        for j, cell in enumerate(cells):
            try:
                cols[j].append(float(cell) if cell else math.nan)
            except ValueError:
                raise BrokenRun(f"{name} is corrupt (line {lineno}: {cell[:20]!r} is not a number)") from None
    table = {c: np.asarray(v, dtype=float) for c, v in zip(header, cols)}
    for c in finite:
        if not np.isfinite(table[c]).all():
            bad = int(np.flatnonzero(~np.isfinite(table[c]))[0]) + 2
            raise BrokenRun(f"{name} is corrupt (line {bad}: {c} is empty or not finite)")
    return table


def read_rows(path: Path) -> list[dict[str, float]]:
    """:func:`read_table` as a list of row dicts (empty cells are NaN)."""
    table = read_table(path, drop_partial_tail=False)
    n = len(next(iter(table.values()))) if table else 0
    return [{c: float(v[i]) for c, v in table.items()} for i in range(n)]


def progress(run_path: Path) -> tuple[int, float | None]:
    """(updates logged in metrics.csv, the last logged ``return_mean_100``) of a run, (0, None) if none."""
    try:
        table = read_table(Path(run_path) / METRICS, ["update"])
    except BrokenRun:
        return 0, None
    ret = table.get("return_mean_100", np.array([]))
    ret = ret[np.isfinite(ret)]
    return len(table["update"]), (float(ret[-1]) if len(ret) else None)
