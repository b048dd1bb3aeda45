"""PPO on the humanoids of the paper's Section 6.3 with Table 4's hyperparameters (default task:
HumanoidBulletEnv-v0, the Bullet port of RoboschoolHumanoid-v0, 50M steps; needs pip install -e ".[bullet]").

    python recipes/humanoid.py
    python recipes/humanoid.py --env-id HumanoidFlagrunBulletEnv-v0 --num-envs 128 --total-steps 100000000
    python recipes/humanoid.py --env-id Humanoid-v5                      # MuJoCo's humanoid, same preset
    python recipes/humanoid.py --experiment figure4 --dry-run            # Figure 4: every task at its budget
    python recipes/humanoid.py --help                                    # every option with its default
"""

import sys
from pathlib import Path

# Run from a clone without installing (the script's own folder comes off sys.path, as in recipes/mujoco.py).
sys.path[0] = str(Path(__file__).resolve().parents[1])

if __name__ == "__main__":
    from ppo_pipeline.launch import recipe_main

    sys.exit(recipe_main("roboschool", __doc__))
