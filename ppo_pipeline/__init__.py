"""ppo-pipeline: the paper's PPO (Schulman et al. 2017) as a chain of TorchRL/TensorDict stages.

``ppo_pipeline.train(env_factory, cfg, transform=...)`` trains on any torchrl env (see
:func:`ppo_pipeline.api.train`); the recipes in ``recipes/`` are the command-line entry points.
"""

from typing import Any

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:  # lazy: importing the package does not import torch
    if name == "train":
        from .api import train

        return train
    raise AttributeError(f"module 'ppo_pipeline' has no attribute {name!r}")
