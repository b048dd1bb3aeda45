"""The algorithm's stages (the paper's Algorithm 1), each a TensorDict-in/TensorDict-out step:

networks and the policy (obs -> distribution parameters -> action), observation/reward normalization,
the collector (N actors x T steps), GAE (Eqs. 11-12), the replay-less minibatch sampler, the surrogate
objectives (Eqs. 6-9) over torchrl's losses, the update step (eager or compiled), and evaluation.
Nothing here writes files or knows about run directories: that is :mod:`ppo_pipeline.run`.
"""
