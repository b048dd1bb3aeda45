"""What one minibatch of the eager update costs, and how much of it is torchrl's loss plumbing.

``python -m ppo_pipeline.bench --minibatch``: for the bench's solo workloads (CartPole with CleanRL's
hyperparameters, Hopper-v5 with Table 3's), one real rollout is collected and its GAE computed by the run's own
stages (:class:`ppo_pipeline.algo.ppo.PPO`), then its minibatches are stepped two ways, alternating, each from the
same weights and Adam state, with the torch threads a run of it takes:

* ``run``: what a run does per minibatch: the objective stage (torchrl's ``ClipPPOLoss`` forward and the backward
  of Eq. 9's total, :class:`ppo_pipeline.algo.objectives.TorchRLObjective`), then the clip and Adam step
  (:class:`ppo_pipeline.algo.optim.MemberAdam`);
* ``plain``: the same arithmetic in plain torch on the same modules (the head's torch distribution, the clip in
  log space, the clipped value loss, the logged entropy, KL estimate and clip fraction), then the same clip and
  Adam step: what the minibatch costs without the TensorDict plumbing of torchrl's loss (a clone of the
  minibatch, its actor and critic called through TensorDict modules, ~10 sets, ``named_apply`` over the
  outputs, the ESS and ratio statistics a run does not keep).

The two losses are checked equal on the first minibatch (the figures would mean nothing otherwise). The
difference between the two per-minibatch times, times a run's minibatches, is what torchrl's loss adds to an
eager run (docs/speed.md); CleanRL's update is written like ``plain``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any


def _workload_config(w: Any, steps: int) -> Any:
    """The bench workload's config at a budget of ``steps``, through the recipes' own command line (CleanRL's
    hyperparameters for cartpole), on the CPU (the process bench's machine). The budget decides, as in a run,
    whether the update compiles (:func:`ppo_pipeline.algo.compiling.wanted_at_budget`)."""
    from ..cli import build_parser, config_from_args
    from ..config import PRESETS

    preset = {"classic_control.py": "classic", "mujoco.py": "mujoco"}[w.recipe]
    ns = build_parser(PRESETS[preset], "").parse_args(
        ["--env-id", w.env_id, *w.args, "--device", "cpu", "--total-steps", str(steps)]
    )
    return config_from_args(ns)


def plain_step(ppo: Any) -> Callable[[Any], dict[str, Any]]:
    """mb -> Eq. 9's total and its logged terms, after its backward: the run's objective (clip, c1 V-loss with
    optional value clipping, c2 entropy; torchrl's advantage standardization) in plain torch ops."""
    import torch

    from ..algo import distributions

    agent, cfg = ppo.agent, ppo.cfg
    head = agent.policy_head
    eps, c1, c2, clip_v = cfg.clip_epsilon, cfg.value_coef, cfg.entropy_coef, cfg.clip_value
    low, high = math.log1p(-eps), math.log1p(eps)
    adv_eps = torch.finfo(torch.float).resolution  # torchrl clamps the advantage's std here

    def step(mb: Any) -> dict[str, Any]:
        obs, action = mb["observation"], mb["action"]
        adv = mb["advantage"]
        if cfg.normalize_advantage:
            adv = (adv - adv.mean()) / adv.std().clamp_min(adv_eps)
        dist = distributions.build(head, head(obs))
        log_prob = dist.log_prob(action)
        log_weight = (log_prob - mb["action_log_prob"]).unsqueeze(-1)  # log r
        clipped = log_weight.clamp(low, high)
        gain = torch.minimum(log_weight.exp() * adv, clipped.exp() * adv)  # min(r A, clip(r) A)
        entropy = dist.entropy()
        value, target = agent.value_net(obs), mb["value_target"]
        value_loss = (target - value).pow(2)
        if clip_v > 0:
            old = mb["state_value"]
            value_loss = torch.maximum(value_loss, (target - (old + (value - old).clamp(-clip_v, clip_v))).pow(2))
        loss = -gain.mean() + c1 * value_loss.mean() - c2 * entropy.mean()
        loss.backward()
        return {
            "loss": loss.detach(),
            "entropy": entropy.detach().mean(),
            "approx_kl": (mb["action_log_prob"] - log_prob).detach().mean(),
            "clip_fraction": (clipped != log_weight).float().mean(),
        }

    return step


def minibatch_comparison(
    workloads: Sequence[Any], rounds: int = 5, steps: dict[str, int] | None = None
) -> list[dict[str, Any]]:
    """Per workload (the process bench's :class:`~ppo_pipeline.tools.bench.Workload`): microseconds per minibatch
    of ``run`` and ``plain`` (the median of ``rounds`` alternating rounds, each over one epoch of the rollout's
    minibatches), their losses on the first minibatch, the run's minibatches per update and its updates at the
    process bench's budget (``steps`` overrides it, as ``--steps``). The run's objective must be the clip (Eq. 7):
    ``plain`` writes that one."""
    return [_compare(w, rounds, (steps or {}).get(w.key, w.steps)) for w in workloads]


def _compare(w: Any, rounds: int, budget: int) -> dict[str, Any]:
    """:func:`minibatch_comparison`'s row for one workload at ``budget`` agent steps."""
    import torch

    from .. import batch as bkeys
    from ..algo.ppo import PPO, one_thread_pays
    from ..envs import make_vector_env
    from ..envs.seeds import env_seeds
    from ..run import checkpoint
    from ..workarounds import scoped

    key, cfg = w.key, _workload_config(w, budget)
    checkpoint.seed_everything(cfg.seed)
    threads_before = torch.get_num_threads()
    envs = make_vector_env(cfg, cfg.num_envs)
    try:
        ppo = PPO(cfg, envs, torch.device("cpu"))
        threads = 1 if one_thread_pays(cfg, ppo.agent) else threads_before  # as the run's trainer sets them
        ppo.collector.reset(env_seeds(cfg.seed, cfg.num_envs))
        batch = ppo.collector.collect()
    finally:
        envs.close()
    ppo.gae(batch)
    minibatches = list(ppo.sampler(batch.exclude(bkeys.NEXT)))
    epoch = minibatches[: len(minibatches) // cfg.epochs]
    start = [p.detach().clone() for p in ppo.params]
    adam_start = ppo.adam.optimizer.state_dict()

    def restore() -> None:
        with torch.no_grad():
            for p, s in zip(ppo.params, start, strict=True):
                p.copy_(s)
        ppo.adam.optimizer.load_state_dict(adam_start)

    ways: dict[str, Callable[[Any], dict[str, Any]]] = {"run": ppo.objective.step, "plain": plain_step(ppo)}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in ways}
    torch.set_num_threads(threads)
    try:
        with scoped():
            for name, f in ways.items():  # the first minibatch's loss of each, from the same weights
                restore()
                ppo.adam.zero_grad()
                first[name] = float(f(epoch[0])["loss"].reshape(-1)[0])
            if not math.isclose(first["run"], first["plain"], rel_tol=1e-5, abs_tol=1e-6):
                raise AssertionError(f"{key}: plain loss {first['plain']} != the run's {first['run']}")
            for _ in range(rounds + 1):  # the first round warms up
                for name, f in ways.items():
                    restore()
                    t0 = time.perf_counter()
                    for mb in epoch:
                        ppo.adam.zero_grad()
                        f(mb)
                        ppo.adam.step()
                    times[name].append((time.perf_counter() - t0) / len(epoch) * 1e6)
    finally:
        torch.set_num_threads(threads_before)
    row: dict[str, Any] = {"workload": key, "rows": cfg.minibatch_size, "threads": threads}
    for name in ways:
        row[f"{name}_us"] = statistics.median(times[name][1:])
        row[f"{name}_rounds_us"] = [round(t) for t in times[name][1:]]
    row["first_loss"] = first
    row["minibatches_per_update"] = len(minibatches)
    row["updates"] = budget // (cfg.num_envs * cfg.num_steps)
    row["compiled"] = ppo.objective.compiled
    return row


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    print(
        "workload  rows threads update    run us/mb  plain us/mb  run/plain | the run's extra: share of its"
        " update; seconds at the bench's budget"
    )
    for r in rows:
        extra = r["run_us"] - r["plain_us"]
        seconds = extra * 1e-6 * r["minibatches_per_update"] * r["updates"]
        print(
            f"{r['workload']:9s} {r['rows']:4d} {r['threads']:7d} {'compiled' if r['compiled'] else 'eager':8s}"
            f" {r['run_us']:10.0f} {r['plain_us']:12.0f}"
            f" {r['run_us'] / r['plain_us']:10.2f} | {extra / r['run_us']:5.0%}; {seconds:5.1f} s over"
            f" {r['updates']} updates x {r['minibatches_per_update']} minibatches"
        )
