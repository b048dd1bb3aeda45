"""ppo-pipeline: the paper's PPO (Schulman et al. 2017) as a chain of TorchRL/TensorDict stages."""

__version__ = "0.1.0"
