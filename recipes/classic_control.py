"""PPO on small vector envs (default: CartPole-v1, 100k steps; rl-baselines3-zoo's tuned values).

python recipes/classic_control.py
python recipes/classic_control.py --env-id Acrobot-v1 --total-steps 200000
python recipes/classic_control.py --help      # every option with its default
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

    sys.exit(recipe_main("classic", __doc__))
