"""A run directory on disk: its file names, atomic writes, and the one reader of its tables.

``runs/<name>/`` holds ``config.json``, ``metrics.csv`` (a row per update), ``episodes.csv`` (a row per
finished training episode), ``summary.json`` (when the run ended), ``checkpoint-*.pt``, ``tb/`` and,
for sweep jobs, ``job.json``. The trainer writes them (:mod:`ppo_pipeline.metrics`); ``sweep status``,
the report and the tests read them through :func:`read_table`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

CONFIG = "config.json"
METRICS = "metrics.csv"
EPISODES = "episodes.csv"
SUMMARY = "summary.json"
JOB_STATE = "job.json"      # a sweep job's last state: RUNNING, FINISHED, FAILED, INTERRUPTED, REQUEUED


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


def read_run_config(run_dir: Path, what: str = "RUN_DIR") -> dict[str, Any]:
    """The config.json object of a run directory, strictly: raises :class:`ppo_pipeline.errors.UserError`
    with one line (naming ``what``, the option that gave the folder) when the folder is missing, is not a
    run directory, or its config.json is not a JSON object."""
    from .errors import UserError

    if not run_dir.exists():
        raise UserError(f"{what} {str(run_dir)!r} does not exist")
    if not run_dir.is_dir():
        raise UserError(f"{what} {str(run_dir)!r} is not a directory")
    path = run_dir / CONFIG
    if not path.is_file():
        raise UserError(f"{what} {str(run_dir)!r} has no {CONFIG} (not a run directory)")
    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise UserError(f"{what} {str(run_dir)!r}: {CONFIG} is not valid JSON") from None
    if not isinstance(saved, dict):
        raise UserError(f"{what} {str(run_dir)!r}: {CONFIG} is not a JSON object")
    return saved


def read_table(path: Path, required: Sequence[str] = (), *, drop_partial_tail: bool = True,
               finite: Sequence[str] = ()) -> dict[str, np.ndarray]:
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
    if lines[-1] == "":
        lines.pop()
    elif drop_partial_tail and len(lines) > 1:
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
