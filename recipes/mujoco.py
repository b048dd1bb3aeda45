"""PPO on MuJoCo with the paper's Table 3 hyperparameters (default task: Hopper-v5, 1M steps).

python recipes/mujoco.py
python recipes/mujoco.py --env-id Walker2d-v5 --objective kl_adaptive --seed 3
python recipes/mujoco.py --help               # every option with its default
"""

import sys
from pathlib import Path

# Run from a clone without installing. The script's own folder comes off sys.path: recipes/mujoco.py
# would otherwise shadow the real ``mujoco`` package.
sys.path[0] = str(Path(__file__).resolve().parents[1])

if __name__ == "__main__":
    # Imported here, not above: Atari's env worker processes start by re-importing this file, and must
    # not pay for torch.
    from ppo_pipeline.launch import recipe_main

    sys.exit(recipe_main("mujoco", __doc__))
