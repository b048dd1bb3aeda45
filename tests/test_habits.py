"""The habits, in the repo (pyproject.toml's [tool.ruff] and [tool.mypy]): the fast tier fails when the package
is not clean under them. Each checker runs as the command a developer types, from the repository root."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *argv], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("argv", [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
                         ids=["lint", "format"])
def test_ruff_is_clean(argv):
    out = _run(*argv)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_mypy_is_clean():
    """The package under [tool.mypy] (its ``files``: ``ppo_pipeline``), as ``mypy`` from the root checks it."""
    out = _run("mypy")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
