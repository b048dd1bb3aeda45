"""Entry point shared by the recipes: parse a preset's command line, validate, run.

Bad input exits with code 2 and one line on stderr before any environment starts; a training
failure (non-finite loss) exits with code 1 and one line naming the update and the checkpoint kept.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Sequence

from . import checkpoint
from .cli import build_parser, config_from_args, fail
from .config import Config, ConfigError


def main(preset: Callable[..., Config], description: str, argv: Sequence[str] | None = None, *,
         atari_only: bool = False) -> int:
    parser = build_parser(preset, description)
    parser.add_argument("--resume", metavar="RUN_DIR", default=None,
                        help="continue the run in RUN_DIR from its latest checkpoint (its config.json wins)")
    ns = parser.parse_args(argv)
    resume_from = None
    if ns.resume:
        run_dir = Path(ns.resume)
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            fail(f"--resume {str(run_dir)!r}: no config.json there (not a run directory)")
        resume_from = checkpoint.latest(run_dir)
        if resume_from is None:
            fail(f"--resume {str(run_dir)!r}: no checkpoint-*.pt there")
        try:
            checkpoint.load(resume_from)
        except checkpoint.CheckpointError as e:
            fail(str(e))
        import json

        cfg = Config.from_dict(json.loads(cfg_path.read_text()))
        cfg.run_dir, cfg.name = str(run_dir.parent), run_dir.name
    else:
        cfg = config_from_args(ns)
    try:
        cfg.validate(atari_only=atari_only)
    except ConfigError as e:
        fail(str(e))
    return run(cfg, resume_from)


def run(cfg: Config, resume_from: Path | None = None) -> int:
    from .trainer import TrainingError, train

    try:
        summary = train(cfg, resume_from)
    except TrainingError as e:
        sys.stderr.write(f"error: {e}\n")
        return 1
    print(f"run {cfg.run_path()}: final eval return {summary['final_eval_return_mean']}, "
          f"last-100 training return {summary['last100_return_mean']}, {summary['wall_time_s']:.0f} s")
    return 0
