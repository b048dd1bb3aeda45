"""Example envs for the docs (``--env-id examples.envs:Name`` from the repository's root)."""
