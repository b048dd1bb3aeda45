"""``python -m ppo_pipeline.report``."""

import sys

from . import main

sys.exit(main())
