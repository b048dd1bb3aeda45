"""Run a recipe in this process and SIGKILL it at a chosen moment (``kill -9``), for tests/test_launch.py.

    python tests/kill_at.py POINT N RECIPE_ARGS...

POINT (the N-th time it happens in this process):
  startup     while the trainer is being built (config.json written, envs being made)
  checkpoint  a checkpoint's temp file is written, not yet renamed into place
  update      in the middle of an update (batch collected, Adam steps not taken)
  truncate    metrics.csv's rewrite (log truncation) is written to its temp file, not yet renamed
"""

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ppo_pipeline import (
    config,  # noqa: E402
    launch,  # noqa: E402
)
from ppo_pipeline.algo import ppo  # noqa: E402

point, n, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seen = {"count": 0}


def hit() -> None:
    seen["count"] += 1
    if seen["count"] == n:
        os.kill(os.getpid(), signal.SIGKILL)


if point == "startup":
    build = ppo.PPO.__init__

    def _build(self, *args, **kwargs):
        hit()
        return build(self, *args, **kwargs)

    ppo.PPO.__init__ = _build
elif point == "update":
    learn = ppo.PPO.learn

    def _learn(self, batch):
        hit()
        return learn(self, batch)

    ppo.PPO.learn = _learn
else:
    replace = os.replace
    wanted = {"checkpoint": lambda name: name.startswith("checkpoint-"), "truncate": lambda name: name == "metrics.csv"}[point]

    def _replace(src, dst):
        if wanted(Path(dst).name):
            hit()
        return replace(src, dst)

    os.replace = _replace

sys.exit(launch.main(config.classic, "kill_at", argv))
