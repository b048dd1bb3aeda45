"""Packs, stage by stage (hypothesis): for random P, minibatches, parameters and per-member hyperparameters,
member p of a pack computes what its solo run's objects compute on member p's data -- loss terms, gradients
and the Adam step (torchrl's ClipPPOLoss / KLPENPPOLoss / PPOLoss, torch's clip_grad_norm_ and Adam), the
policy's log-probs and values, and the minibatch permutations. Mutants that each check must catch: a global
grad-norm clip, advantages standardized across members, one member's epsilon or beta applied to another,
a permutation shared by the members."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from tensordict import TensorDict

from ppo_pipeline.algo.distributions import GaussianHead
from ppo_pipeline.algo.objectives import (
    make_loss,
    set_beta,
    set_clip_epsilon,
    total_loss,
)
from ppo_pipeline.algo.optim import MemberAdam, clip_grad_norm_per_member
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.sampler import MemberSampler, MinibatchSampler
from ppo_pipeline.config import Config, atari, classic, mujoco
from ppo_pipeline.pack.agent import PackAgent
from ppo_pipeline.pack.objective import MemberObjective

SPACES = {"gaussian": (gym.spaces.Box(-1.0, 1.0, (3,)), gym.spaces.Box(-1.0, 1.0, (2,))),
          "categorical": (gym.spaces.Box(-1.0, 1.0, (4,)), gym.spaces.Discrete(3)),
          # the Nature CNN (Atari's trunk, stacked by vmap) on a frame stack
          "pixels": (gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8"), gym.spaces.Discrete(3)),
          # Dict observations: the CombinedEncoder stacked by vmap, observations a TensorDict of entries; vector
          # entries beside an action mask (the masked head reads it from the observation) ...
          "dict": (gym.spaces.Dict({"cart": gym.spaces.Box(-1.0, 1.0, (2,)), "pole": gym.spaces.Box(-1.0, 1.0, (2, 1)),
                                    "action_mask": gym.spaces.MultiBinary(3)}), gym.spaces.Discrete(3)),
          # ... and an image entry (its own Nature CNN) beside a vector entry, under a Gaussian policy
          "dict-image": (gym.spaces.Dict({"image": gym.spaces.Box(0, 255, (36, 36, 1), dtype="uint8"),
                                          "goal": gym.spaces.Box(-1.0, 1.0, (2,))}), gym.spaces.Box(-1.0, 1.0, (2,)))}
CNN = ("pixels", "dict-image")   # policies whose weights keep their own (orthogonal) scale
PRESETS = {"mujoco": mujoco, "classic": classic, "shared-trunk": atari}   # atari: vector obs -> a shared MLP trunk
OBJECTIVES = [("clip", "clip_epsilon", [0.1, 0.2, 0.3]), ("kl_adaptive", "kl_beta", [0.3, 1.0, 3.0]),
              ("kl_fixed", "kl_beta", [0.3, 1.0, 10.0]), ("none", None, [None])]


@dataclass
class PackCase:
    members: list[Config]
    agents: list[Agent]        # member p's solo agent (its own random parameters)
    data: TensorDict           # [P, M]: each member's own minibatch
    alpha: float

    def __repr__(self) -> str:
        objs = [(m.objective, m.clip_epsilon if m.objective == "clip" else m.kl_beta) for m in self.members]
        return f"PackCase(P={len(self.members)}, M={self.data.batch_size[1]}, alpha={self.alpha:.3g}, members={objs})"


@st.composite
def pack_cases(draw: st.DrawFn, max_p: int = 4) -> PackCase:
    P = draw(st.integers(1, max_p))
    M = draw(st.integers(2, 64))
    policy = draw(st.sampled_from(sorted(SPACES)))
    base = PRESETS[draw(st.sampled_from(sorted(PRESETS)))]()
    base = dataclasses.replace(base, normalize_advantage=draw(st.booleans()), clip_value=draw(st.sampled_from([0.0, 0.2])),
                               entropy_coef=draw(st.sampled_from([0.0, 0.01])))
    obs_space, act_space = SPACES[policy]
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    members, agents, parts = [], [], []
    for p in range(P):
        objective, field, values = draw(st.sampled_from(OBJECTIVES))
        over = {"objective": objective, "seed": p}
        if field:
            over[field] = draw(st.sampled_from(values))
        cfg = dataclasses.replace(base, **over)
        agent = Agent(obs_space, act_space, cfg)
        with torch.no_grad():
            for w in agent.parameters():
                if policy in CNN:   # the CNN at its own (orthogonal) scale, moved a little: O(1) activations
                    w.add_(torch.randn(w.shape, generator=gen) * 0.01)
                else:
                    w.copy_(torch.randn(w.shape, generator=gen) * draw(st.sampled_from([0.1, 0.3, 0.6])))
        obs = observations(obs_space, M, gen)
        with torch.no_grad():
            out = agent.act(obs)
            shift = draw(st.sampled_from([0.0, 0.1, 0.5]))
            stored = out["action_log_prob"] + torch.randn(M, generator=gen) * shift
            old = {k: out[k] if k == "mask" else
                   out[k] + torch.randn(out[k].shape, generator=gen) * shift * (0 if k == "scale" else 1)
                   for k in agent.param_keys}
            v = out["state_value"]
            parts.append(TensorDict({
                "observation": obs, "action": out["action"], "action_log_prob": stored, **old,
                "advantage": torch.randn(M, 1, generator=gen) * draw(st.sampled_from([0.1, 1.0, 10.0])),
                "value_target": v + torch.randn(v.shape, generator=gen), "state_value": v + 0.1 * torch.randn(v.shape, generator=gen),
            }, [M]))
        members.append(cfg)
        agents.append(agent)
    alpha = draw(st.sampled_from([1.0, 0.5, 0.05]))
    return PackCase(members, agents, torch.stack(parts), alpha)


def observations(space: gym.Space, m: int, gen: torch.Generator) -> torch.Tensor | TensorDict:
    """M random observations of ``space`` as the collector hands them to the agent: uint8 pixels, float vectors
    (O(1) to a few), a ``Dict``'s as a TensorDict [M] of its entries with a bool action mask (one action or more
    allowed in every row)."""
    if isinstance(space, gym.spaces.Dict):
        return TensorDict({k: observations(s, m, gen) for k, s in space.spaces.items()}, [m])
    if isinstance(space, gym.spaces.MultiBinary):
        mask = torch.rand(m, space.n, generator=gen) < 0.5
        mask[torch.arange(m), torch.randint(0, space.n, (m,), generator=gen)] = True
        return mask
    if space.dtype == np.uint8:
        return torch.randint(0, 256, (m, *space.shape), generator=gen, dtype=torch.uint8)
    return (torch.rand(m, *space.shape, generator=gen) * 2 - 1) * 3


def solo_step(case: PackCase, p: int) -> tuple[dict[str, torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Member p alone, with the solo objects: torchrl's loss terms, the gradients, the weights after one
    clipped Adam step."""
    cfg, agent = case.members[p], case.agents[p]
    loss = make_loss(cfg, agent)
    set_clip_epsilon(loss, cfg.clip_epsilon * case.alpha)
    set_beta(loss, cfg.kl_beta)
    params = list(agent.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr, eps=cfg.adam_eps)
    out = loss(case.data[p])
    opt.zero_grad()
    total_loss(out).backward()
    grads = [w.grad.clone() for w in params]
    torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
    opt.step()
    terms = {k: out[k].detach().mean() for k in ("loss_objective", "loss_critic", "entropy", "kl_approx")}
    if "loss_entropy" in out.keys():
        terms["loss_entropy"] = out["loss_entropy"].detach()
    if cfg.objective == "clip":
        terms["clip_fraction"] = out["clip_fraction"].detach()
    if cfg.objective.startswith("kl"):
        terms["kl"] = out["kl"].detach().mean()
    return terms, grads, [w.detach().clone() for w in params]


def check_pack_step(case: PackCase, objective_cls: Callable[..., MemberObjective] = MemberObjective,
                    clip: Callable[..., Any] = clip_grad_norm_per_member, compile: bool = False) -> None:
    """The pack's objective, gradients and (per-member clipped) Adam step (:class:`MemberAdam`, ``compile``d or
    not) equal each solo member's."""
    pack = PackAgent(case.agents)
    objective = objective_cls(pack, case.members)
    params = list(pack.parameters())
    first = case.members[0]
    adam = MemberAdam(params, len(case.members), lr=first.lr, eps=first.adam_eps, max_grad_norm=first.max_grad_norm,
                      compile=compile, clip=clip)
    out = objective(case.data, case.alpha)
    adam.zero_grad()
    out["loss"].backward()
    grads = [w.grad.clone() for w in params]
    adam.step(dead=torch.zeros(len(case.members), dtype=torch.bool))
    for p in range(len(case.members)):
        terms, solo_grads, solo_after = solo_step(case, p)
        for k, v in terms.items():
            assert torch.allclose(out[k][p], v, rtol=1e-4, atol=1e-5), (k, p, float(out[k][p].detach()), float(v))
        for g, s in zip(grads, solo_grads):
            assert torch.allclose(g[p], s, rtol=1e-3, atol=1e-5), ("gradient", p)
        for w, s in zip(params, solo_after):
            assert torch.allclose(w.detach()[p], s, rtol=1e-4, atol=1e-6), ("Adam step", p)


@given(case=pack_cases())
def test_member_terms_gradients_and_adam_step_are_the_solo_ones(case: PackCase) -> None:
    check_pack_step(case)


@given(case=pack_cases(), n=st.integers(1, 16))
def test_pack_act_log_probs_and_values_are_the_solo_agents(case: PackCase, n: int) -> None:
    pack = PackAgent(case.agents)
    n = min(n, case.data.batch_size[1])
    obs = torch.stack([case.data[p]["observation"][:n] for p in range(len(case.agents))])
    gens = [torch.Generator().manual_seed(p) for p in range(len(case.agents))]
    flat = pack.act(obs.reshape(-1, *obs.shape[2:]), generators=gens)     # envs member-major, as collected
    out = {k: v.reshape(len(case.agents), n, *v.shape[1:]) for k, v in flat.items()}
    for p, agent in enumerate(case.agents):
        with torch.no_grad():
            dist = agent.actor.get_dist(TensorDict({"observation": obs[p]}, [n]))
            assert torch.allclose(dist.log_prob(out["action"][p]), out["action_log_prob"][p], rtol=1e-5, atol=1e-5)
            assert torch.allclose(agent.state_value(obs[p]), out["state_value"][p], rtol=1e-5, atol=1e-6)
        # member p's draws come from its own generator: the solo head's draw with that generator
        solo_action = agent.policy_head.draw({k: out[k][p] for k in agent.param_keys}, torch.Generator().manual_seed(p))
        assert torch.equal(solo_action, out["action"][p])


@given(case=pack_cases(), steps=st.integers(1, 5), envs=st.integers(1, 3))
def test_rollout_noise_is_each_members_own_stream(case: PackCase, steps: int, envs: int) -> None:
    """A Gaussian pack draws member p's noise for a rollout from generator p alone, in one call (so it does not
    depend on P or on the other members), and a step's action is loc + scale * that step's noise."""
    pack = PackAgent(case.agents)
    P = len(case.agents)
    noise = pack.rollout_noise(steps, envs, [torch.Generator().manual_seed(100 + p) for p in range(P)])
    if not isinstance(case.agents[0].policy_head, GaussianHead):
        assert noise is None
        return
    width = case.agents[0].policy_head.log_std.shape[-1]
    assert noise.shape == (steps, P * envs, width)
    noise = noise.reshape(steps, P, envs, width)
    for p in range(P):
        assert torch.equal(noise[:, p], torch.randn((steps, envs, width), generator=torch.Generator().manual_seed(100 + p)))
    n = min(envs, case.data.batch_size[1])
    obs = torch.stack([case.data[p]["observation"][:n] for p in range(P)])
    step_noise = noise[-1, :, :n]
    flat = pack.act(obs.reshape(-1, *obs.shape[2:]), noise=step_noise.reshape(P * n, width))
    out = {k: v.reshape(P, n, *v.shape[1:]) for k, v in flat.items()}
    assert torch.allclose(out["action"], out["loc"] + out["scale"] * step_noise)
    for p, agent in enumerate(case.agents):
        with torch.no_grad():
            dist = agent.actor.get_dist(TensorDict({"observation": obs[p]}, [n]))
            assert torch.allclose(dist.log_prob(out["action"][p]), out["action_log_prob"][p], rtol=1e-5, atol=1e-5)


@given(seeds=st.lists(st.integers(0, 10_000), min_size=1, max_size=5, unique=True), epochs=st.integers(1, 3),
       blocks=st.integers(1, 4))
def test_member_permutations_are_the_solo_samplers(seeds: list[int], epochs: int, blocks: int) -> None:
    check_permutations(seeds, epochs, blocks)


def check_permutations(seeds: list[int], epochs: int, blocks: int, sampler_cls: Any = MemberSampler) -> None:
    n, m = 8 * blocks, 8
    batch = TensorDict({"i": torch.arange(n).repeat(len(seeds), 1)}, [len(seeds), n])
    pack = list(sampler_cls(epochs, m, [torch.Generator().manual_seed(s) for s in seeds])(batch))
    for p, seed in enumerate(seeds):
        solo = list(MinibatchSampler(epochs, m, torch.Generator().manual_seed(seed)).indices(n))
        assert [mb["i"][p].tolist() for mb in pack] == [x.tolist() for x in solo], p


# ----------------------------------------------------------------------------------------------------
# Mutants: each must be caught by the checks above
# ----------------------------------------------------------------------------------------------------
def assert_catches(check: Callable[[Any], None], strategy: st.SearchStrategy, examples: int = 40) -> None:
    @settings(max_examples=examples, phases=[Phase.generate], database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def search(example: Any) -> None:
        check(example)

    with pytest.raises(AssertionError):
        search()


def global_clip(params: list[torch.Tensor], max_norm: float, members: int) -> None:
    torch.nn.utils.clip_grad_norm_(params, max_norm)


class AcrossMembersAdvantage(MemberObjective):
    def forward(self, mb: TensorDict, alpha: float = 1.0) -> TensorDict:
        mb = mb.clone()
        a = mb["advantage"]
        mb["advantage"] = (a - a.mean()) / a.std().clamp_min(1e-6)
        return super().forward(mb, alpha)


class RolledHyperparameters(MemberObjective):
    def forward(self, mb: TensorDict, alpha: float = 1.0) -> TensorDict:
        eps, beta = self.epsilon, self.beta
        self.epsilon, self.beta = eps.roll(1), beta.roll(1)
        try:
            return super().forward(mb, alpha)
        finally:
            self.epsilon, self.beta = eps, beta


class SharedPermutation(MemberSampler):
    def __init__(self, epochs: int, minibatch_size: int, generators: list[torch.Generator]):
        super().__init__(epochs, minibatch_size, [generators[0]] * len(generators))


def test_mutant_global_grad_norm_clip_is_caught():
    assert_catches(lambda c: check_pack_step(c, clip=global_clip), pack_cases())


def test_mutant_advantages_normalized_across_members_is_caught():
    assert_catches(lambda c: check_pack_step(c, objective_cls=AcrossMembersAdvantage), pack_cases())


def test_mutant_other_members_epsilon_or_beta_is_caught():
    assert_catches(lambda c: check_pack_step(c, objective_cls=RolledHyperparameters), pack_cases())


def test_mutant_shared_permutation_is_caught():
    strategy = st.tuples(st.lists(st.integers(0, 10_000), min_size=2, max_size=4, unique=True), st.integers(1, 2),
                         st.integers(1, 3))
    assert_catches(lambda x: check_permutations(*x, sampler_cls=SharedPermutation), strategy)
