"""User tools around finished or running runs: play (watch and score a checkpoint), export (torch.export /
ONNX policy) and the speed benchmark (whose figures the sweeps' cost estimates read). The report is its
own package, :mod:`ppo_pipeline.report`."""
