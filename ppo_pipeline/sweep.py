"""``python -m ppo_pipeline.sweep``: the command-line entry point of :mod:`ppo_pipeline.sweeps.sweep`."""

import sys

from .sweeps.sweep import main

if __name__ == "__main__":
    sys.exit(main())
