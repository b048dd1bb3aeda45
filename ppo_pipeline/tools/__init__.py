"""User tools around finished or running runs: play (watch and score a checkpoint), export (torch.export /
ONNX policy), video, and the speed benchmark. The report is its own package, :mod:`ppo_pipeline.report`."""
