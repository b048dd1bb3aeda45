"""``python -m ppo_pipeline.play``: the command-line entry point of :mod:`ppo_pipeline.tools.play`."""

import sys

from .tools.play import main

if __name__ == "__main__":
    sys.exit(main())
