"""Running one training run: the command line, preparing a config (lookups, I/O checks), the run loop
around Algorithm 1 (logging, evaluation cadence, checkpoints, signals), the run directory and its one
config reader, checkpoints and exact resume, metrics and tracking, CPU threads."""
