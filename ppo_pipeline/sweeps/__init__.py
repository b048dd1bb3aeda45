"""Many runs: grids and the paper's named experiments, the sweep manifest (status, resume, cancel), and
SLURM clusters through submitit."""
