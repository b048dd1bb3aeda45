"""Small shared helpers for the tests (no fixtures with side effects)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ppo_pipeline import config
from ppo_pipeline.run.prepare import prepare


def tiny(preset=config.classic, tmp: Path | None = None, **kw) -> config.Config:
    """A resolved, validated config with a small budget, no TensorBoard and no progress bar."""
    base = dict(progress=False, tensorboard=False, run_dir=str(tmp) if tmp else "runs")
    base.update(kw)
    cfg = preset(**base)
    if "minibatch_size" not in kw:
        cfg.minibatch_size = min(cfg.minibatch_size, cfg.batch_size)
    if "total_steps" not in kw:
        cfg.total_steps = cfg.batch_size * 2
    return prepare(cfg)


def replace(cfg: config.Config, **kw) -> config.Config:
    return dataclasses.replace(cfg, **kw)


# The recipes' command line on a tiny CartPole-like budget, and its one-line refusals (test_env_ids, test_video)
ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = ["--num-envs", "4", "--num-steps", "32", "--minibatch-size", "64", "--epochs", "2", "--total-steps", "1024",
             "--eval-every", "4", "--eval-episodes", "2", "--eval-max-steps", "60", "--torch-threads", "1",
             "--no-progress"]


def refusal(capsys, command) -> str:
    """``command()`` must exit 2 with one ``error:`` line on stderr and nothing else there; that line."""
    import pytest

    with pytest.raises(SystemExit) as e:
        command()
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    return err.rstrip("\n")


def one_line_error(argv: list[str], capsys) -> str:
    """Run the classic recipe's main on ``argv``: it must exit 2 with one ``error:`` line, which is returned."""
    from ppo_pipeline import launch

    return refusal(capsys, lambda: launch.main(config.classic, "t", argv))


def subprocess_env() -> dict:
    """The environment of a recipe started as a user would: tests/ importable, W&B offline and quiet."""
    import os

    return {**os.environ, "PYTHONPATH": str(ROOT / "tests"), "WANDB_MODE": "offline", "WANDB_SILENT": "true"}


def run_two_at_a_time(argvs: list[list[str]], cwd: Path | list[Path] = ROOT, env: dict | None = None) -> list:
    """``subprocess.run`` of each argv (captured text, 300 s each; in ``cwd``, or in ``cwd[i]``; ``env``: the
    processes' environment), two at a time: a fresh process spends its seconds in single-threaded imports, so two
    share the 2 cores. Results in order."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    cwds = cwd if isinstance(cwd, list) else [cwd] * len(argvs)

    def one(i: int) -> subprocess.CompletedProcess:
        return subprocess.run(argvs[i], capture_output=True, text=True, cwd=cwds[i], timeout=300, env=env)

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(one, range(len(argvs))))

