"""``python -m ppo_pipeline.bench``: the command-line entry point of :mod:`ppo_pipeline.tools.bench`."""

import sys

from .tools.bench import main

if __name__ == "__main__":
    sys.exit(main())
