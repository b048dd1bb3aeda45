"""Running one training run: preparing a config (lookups, I/O checks), the run loop around Algorithm 1
(logging, evaluation cadence, checkpoints, signals), checkpoints and exact resume, metrics, episode
videos and tracking. The command line is :mod:`ppo_pipeline.cli`; the recipes' front door (one run or a
sweep) is :mod:`ppo_pipeline.launch`."""
