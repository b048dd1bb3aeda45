"""The bench's pip-installable peer: Stable-Baselines3's PPO on a bench workload, with our side's hyperparameters.

    /tmp/sb3-venv/bin/python ppo_pipeline/tools/peer_sb3.py --workload cartpole --total-timesteps 99840
    /tmp/sb3-venv/bin/python ppo_pipeline/tools/peer_sb3.py --workload hopper --dry-run   # the kwargs, no training

Run by the peer's own Python (a venv with ``stable-baselines3`` and ``gymnasium[mujoco]``, see docs/speed.md),
as a file: it imports nothing of ppo_pipeline, so the venv needs no install of this project. ``bench --peer sb3``
runs it; its wall clock, from process start to exit, is the peer's figure.

:data:`HYPER` holds each workload's values under the names of ppo_pipeline's Config fields, the ones our side
of the bench resolves from its recipe and options (``tests/test_bench_sb3.py`` checks that they agree);
:func:`sb3_kwargs` maps them onto SB3's ``PPO`` arguments (its public API only). Where the two differ and
cannot be made to agree, it is said here:

* SB3's value clipping (``clip_range_vf``) takes the squared error of the clipped prediction alone; ours (and
  CleanRL's) the larger of the clipped and unclipped errors. Same arithmetic cost.
* ``anneal`` scales the step size and the clip range by the remaining fraction of training, as ours does (SB3's
  ``progress_remaining`` is 1 - steps done / total at each update, our alpha the same).
* Reward scaling and observation normalization (Hopper) are SB3's ``VecNormalize`` with the same clips (10) and
  the same discount; ours are running statistics of the same kind.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HYPER: dict[str, dict[str, Any]] = {
    # bench.py's "cartpole": the classic preset with CleanRL ppo.py's values (4 x 128, 4 epochs x 4 minibatches)
    "cartpole": {
        "env_id": "CartPole-v1",
        "num_envs": 4,
        "num_steps": 128,
        "epochs": 4,
        "minibatch_size": 128,
        "lr": 2.5e-4,
        "anneal": True,
        "clip_epsilon": 0.2,
        "clip_value": 0.2,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "entropy_coef": 0.01,
        "value_coef": 0.5,
        "max_grad_norm": 0.5,
        "adam_eps": 1e-5,
        "hidden_sizes": [64, 64],
        "normalize_advantage": True,
        "normalize_obs": False,
        "scale_reward": False,
        "clip_obs": 10.0,
        "clip_reward": 10.0,
    },
    # bench.py's "hopper": the mujoco preset as it is (Table 3: 1 x 2048, 10 epochs of minibatch 64, no annealing)
    "hopper": {
        "env_id": "Hopper-v5",
        "num_envs": 1,
        "num_steps": 2048,
        "epochs": 10,
        "minibatch_size": 64,
        "lr": 3e-4,
        "anneal": False,
        "clip_epsilon": 0.2,
        "clip_value": 0.0,
        "gamma": 0.99,
        "gae_lambda": 0.95,
        "entropy_coef": 0.0,
        "value_coef": 0.25,
        "max_grad_norm": 0.5,
        "adam_eps": 1e-5,
        "hidden_sizes": [64, 64],
        "normalize_advantage": True,
        "normalize_obs": True,
        "scale_reward": True,
        "clip_obs": 10.0,
        "clip_reward": 10.0,
    },
}


class _Scaled:
    """A constant, times SB3's remaining progress (1 -> 0) when annealed: a schedule SB3 calls each update."""

    def __init__(self, value: float, anneal: bool) -> None:
        self.value, self.anneal = value, anneal

    def __call__(self, progress_remaining: float) -> float:
        return self.value * progress_remaining if self.anneal else self.value

    def __repr__(self) -> str:
        return f"{self.value} x progress" if self.anneal else str(self.value)


def sb3_kwargs(h: dict[str, Any], seed: int) -> dict[str, Any]:
    """SB3 ``PPO(...)`` keyword arguments for the values ``h`` (policy_kwargs' activation named, not built)."""
    return {
        "n_steps": h["num_steps"],
        "batch_size": h["minibatch_size"],
        "n_epochs": h["epochs"],
        "learning_rate": _Scaled(h["lr"], h["anneal"]),
        "clip_range": _Scaled(h["clip_epsilon"], h["anneal"]),
        "clip_range_vf": h["clip_value"] or None,
        "gamma": h["gamma"],
        "gae_lambda": h["gae_lambda"],
        "ent_coef": h["entropy_coef"],
        "vf_coef": h["value_coef"],
        "max_grad_norm": h["max_grad_norm"],
        "normalize_advantage": h["normalize_advantage"],
        "policy_kwargs": {
            "net_arch": {"pi": list(h["hidden_sizes"]), "vf": list(h["hidden_sizes"])},  # separate actor, critic
            "activation_fn": "Tanh",
            "optimizer_kwargs": {"eps": h["adam_eps"]},
        },
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }


def train(workload: str, total_timesteps: int, seed: int) -> None:
    """SB3's PPO on the workload's env stack for ``total_timesteps`` agent steps (whole rollouts, as SB3 runs)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    h = HYPER[workload]
    env = make_vec_env(h["env_id"], n_envs=h["num_envs"], seed=seed)
    if h["normalize_obs"] or h["scale_reward"]:
        env = VecNormalize(
            env,
            norm_obs=h["normalize_obs"],
            norm_reward=h["scale_reward"],
            clip_obs=h["clip_obs"],
            clip_reward=h["clip_reward"],
            gamma=h["gamma"],
        )
    kwargs = sb3_kwargs(h, seed)
    kwargs["policy_kwargs"]["activation_fn"] = getattr(torch.nn, kwargs["policy_kwargs"]["activation_fn"])
    model = PPO("MlpPolicy", env, **kwargs)
    model.learn(total_timesteps=total_timesteps)
    env.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workload", required=True, choices=sorted(HYPER), help="the bench workload (bench.py's key)")
    p.add_argument("--total-timesteps", type=int, default=0, help="agent steps; default: one rollout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--dry-run", action="store_true", help="print SB3's PPO arguments as JSON; import nothing, train nothing"
    )
    args = p.parse_args(argv)
    h = HYPER[args.workload]
    steps = args.total_timesteps or h["num_envs"] * h["num_steps"]
    if steps < 1:
        p.error(f"--total-timesteps {args.total_timesteps}: must be >= 1")
    if args.dry_run:
        print(json.dumps({"env_id": h["env_id"], "total_timesteps": steps, **sb3_kwargs(h, args.seed)}, default=repr))
        return 0
    train(args.workload, steps, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
