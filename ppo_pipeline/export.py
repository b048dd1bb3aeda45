"""``python -m ppo_pipeline.export``: the command-line entry point of :mod:`ppo_pipeline.tools.export`."""

import sys

from .tools.export import main

if __name__ == "__main__":
    sys.exit(main())
