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

from ppo_pipeline import config, launch  # noqa: E402

if __name__ == "__main__":
    sys.exit(launch.main(config.mujoco, __doc__))
