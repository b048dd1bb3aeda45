"""A sweep folder stores its paths relative to itself (issue 29, item 4): moved or copied, ``sweep status``
and ``report`` read it the same, and an older manifest's absolute paths are still read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ppo_pipeline import launch, report
from ppo_pipeline.config import classic
from ppo_pipeline.sweeps import sweep

TINY = ["--total-steps", "256", "--num-envs", "4", "--num-steps", "16", "--minibatch-size", "32",
        "--epochs", "1", "--eval-episodes", "0", "--checkpoint-every", "2", "--torch-threads", "1",
        "--no-tensorboard", "--no-progress"]


def _stored_strings(folder: Path) -> list[str]:
    """Every string value of every JSON file below ``folder``, but the manifest's record of the command."""
    out: list[str] = []

    def walk(x: object) -> None:
        if isinstance(x, str):
            out.append(x)
        elif isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for path in folder.rglob("*.json"):
        data = json.loads(path.read_text())
        if path.name == "manifest.json":
            data.pop("command")
        walk(data)
    return out


@pytest.mark.slow
def test_moved_sweep_reads_the_same(tmp_path, capsys):
    old = tmp_path / "old" / "sweep"
    assert launch.main(classic, "t", [*TINY, "--seeds", "0-2", "--pack", "2", "--sweep-dir", str(old)]) == 0
    capsys.readouterr()
    manifest = json.loads((old / "manifest.json").read_text())
    assert {r["config"]["run_dir"] for r in manifest["runs"]} == {"runs"}
    for run in (old / "runs").iterdir():
        assert json.loads((run / "config.json").read_text())["run_dir"] == "runs"
    assert not [s for s in _stored_strings(old) if str(tmp_path) in s]      # nothing names where it was made

    new = tmp_path / "moved" / "here"
    new.parent.mkdir()
    shutil.move(str(old), str(new))
    assert sweep.main(["status", str(new)]) == 0
    out = capsys.readouterr().out
    assert "3/3 runs finished" in out and "1/1 packs finished" in out, out
    assert report.main([str(new), "--random-score", "CartPole-v1=20", "--bootstrap", "0"]) == 0
    out = capsys.readouterr().out
    assert "report of 3 runs (0 skipped)" in out and out.splitlines()[-1] == f"written to {new / 'report'}"

    # a manifest written before: absolute run_dirs naming where the sweep was made
    manifest = json.loads((new / "manifest.json").read_text())
    for r in manifest["runs"]:
        r["config"]["run_dir"] = str(old / "runs")
    (new / "manifest.json").write_text(json.dumps(manifest))
    rows = sweep.status(new)
    assert [r.state for r in rows] == ["FINISHED"] * 3
    sweep.check_checkpoints(new, manifest["runs"])     # what resume checks first: the moved runs' checkpoints
