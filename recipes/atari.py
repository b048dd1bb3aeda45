"""PPO on Atari with the paper's Table 5 hyperparameters (default game: Pong).

python recipes/atari.py                       # ALE/Pong-v5, 10M agent steps = 40M frames
python recipes/atari.py --env-id Breakout --total-steps 1000000
python recipes/atari.py --help                # every option with its default
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

    sys.exit(recipe_main("atari", __doc__))
