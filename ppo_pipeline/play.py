"""``python -m ppo_pipeline.play``: the command-line entry point of :mod:`ppo_pipeline.tools.play`."""

import sys

if __name__ == "__main__":
    from . import workarounds

    workarounds.defer_compiler_stack()  # playing never compiles: torch's compiler stack stays out (workaround 11)
    from .tools.play import main

    sys.exit(main())
