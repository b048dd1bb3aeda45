"""Algorithm 1 for a pack: P members' iterations as one batched computation.

The same stages as a solo run (:class:`ppo_pipeline.algo.ppo.PPO`), each with a leading member dimension:

    batch = collector.collect()            # [P, E, T]: each member's envs, one policy call per step
    gae(batch)                             # torchrl's GAE, unchanged (time is the last dim)
    for mb in sampler(batch):              # [P, M]: member p's own permutation (its own generator)
        loss = objective(mb)["loss"]       # sum over members of their own Eq. 9 (MemberObjective)
        backward                           # compiled by the solo rule (--compile), as are the Adam step and act
        adam.step(dead)                    # per-member grad-norm clip, one fused Adam (= P Adams): MemberAdam
    per member: schedules (alpha), KL beta rule, metrics row

Per member, as its solo run: advantage standardization, the grad-norm clip (never one norm across
members), epsilon and beta (and the beta rule), observation and reward statistics, random streams,
episode statistics. A member whose loss or weights go non-finite is dropped from the sum (its gradient
stays its own, so the others go on) and reported by :meth:`PackPPO.update` as diverged.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase

from .. import batch as keys
from ..algo import compiling
from ..algo.advantages import make_gae
from ..algo.normalize import ObsNormalizer, RewardScaler
from ..algo.objectives import KLController
from ..algo.policy import Agent
from ..algo.schedules import schedule
from ..config import Config
from .agent import PackAgent
from .collect import PackCollector
from .objective import MemberObjective
from .optim import MemberAdam

KL_CHUNK = 4096
STEP_TERMS = ("loss_objective", "loss_critic", "entropy", "kl_approx", "clip_fraction", "total")


class PackSampler:
    """K epochs of [P, M] minibatches: each epoch member p draws its own permutation with its generator
    (the draws of its solo run's :class:`~ppo_pipeline.algo.sampler.MinibatchSampler`)."""

    def __init__(self, epochs: int, minibatch_size: int, generators: Sequence[torch.Generator]):
        self.epochs, self.minibatch_size, self.generators = epochs, minibatch_size, generators

    def __call__(self, batch: TensorDictBase) -> Iterator[TensorDictBase]:
        p = batch.batch_size[0]
        flat = batch.reshape(p, -1)
        n = flat.batch_size[1]
        rows = torch.arange(p, device=flat.device).unsqueeze(1)
        for _ in range(self.epochs):
            perm = torch.stack([torch.randperm(n, generator=g) for g in self.generators]).to(flat.device)
            yield from flat[rows, perm].split(self.minibatch_size, dim=1)


class PackPPO:
    """The stages of a pack of ``members`` (configs that share everything but seed and objective) over the
    batched env ``envs`` (``P x num_envs`` envs, member-major)."""

    def __init__(self, members: Sequence[Config], envs: Any, device: torch.device):
        self.members, self.envs, self.device = list(members), envs, device
        cfg = self.cfg = members[0]
        P = self.P = len(members)
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        self.obs_norm = ObsNormalizer(obs_space.shape, cfg.clip_obs, members=P) if cfg.normalize_obs else None
        self.reward_scaler = (RewardScaler(cfg.num_envs, cfg.gamma, cfg.clip_reward, members=P)
                              if cfg.scale_reward else None)
        solo = []
        for m in members:                    # each member's initial weights are its solo run's
            torch.manual_seed(m.seed)
            solo.append(Agent(obs_space, act_space, m))
        self.agent = PackAgent(solo).to(device)
        self.objective = MemberObjective(self.agent, members).to(device)
        self.gae = make_gae(cfg).to(device)
        self.params = list(self.agent.parameters())
        # the objective's forward + backward, the Adam step and the policy's per-step call, compiled by the
        # solo update's rule (compiling.wanted)
        compile_it = compiling.wanted_at_budget(cfg, pixels=self.agent.pixels, device=device, members=P)
        self.adam = MemberAdam(self.params, P, lr=cfg.lr, eps=cfg.adam_eps, max_grad_norm=cfg.max_grad_norm,
                               compile=compile_it)
        self.lr = schedule(cfg.lr, anneal=cfg.anneal, num_updates=cfg.num_updates)
        self.alpha = schedule(1.0, anneal=cfg.anneal, num_updates=cfg.num_updates)
        self.action_generators = [torch.Generator().manual_seed(m.seed) for m in members]
        self.sampler_generators = [torch.Generator().manual_seed(m.seed) for m in members]
        self.collector = PackCollector(envs, self.agent, cfg.num_steps, device, generators=self.action_generators,
                                       obs_norm=self.obs_norm, reward_scaler=self.reward_scaler, compile=compile_it)
        self.sampler = PackSampler(cfg.epochs, cfg.minibatch_size, self.sampler_generators)
        self.kl_rules = [KLController(m.kl_target) if m.objective == "kl_adaptive" else None for m in members]
        self.phase_time: dict[str, float] = defaultdict(float)
        self.loss_step = compiling.MaybeCompiled(self._loss_step, compile_it, "pack update",
                                                 before_retry=self.adam.zero_grad)

    def _loss_step(self, mb: TensorDictBase, alpha: torch.Tensor) -> dict[str, torch.Tensor]:
        """mb [P, M] -> the members' terms [P] (detached), after ``loss.backward()``."""
        out = self.objective(mb, alpha)
        out["loss"].backward()
        return {k: out[k].detach() for k in STEP_TERMS}

    @property
    def alive(self) -> np.ndarray:
        return self.collector.alive

    def update(self, update: int) -> tuple[list[dict[str, Any]], list[int]]:
        """Iteration ``update`` of Algorithm 1 for every member: (a metrics row per member, the members that
        diverged in it)."""
        lr, alpha = self.lr(update), self.alpha(update)
        self.adam.set_lr(lr)
        t0 = time.perf_counter()
        batch = self.collector.collect()                   # [P, E, T]
        t1 = time.perf_counter()
        self.gae(batch)
        t2 = time.perf_counter()
        stats, diverged = self.learn(batch, alpha)
        t3 = time.perf_counter()
        self.phase_time["collect"] += t1 - t0
        self.phase_time["gae"] += t2 - t1
        self.phase_time["update"] += t3 - t2
        kl = self.mean_kl(batch)
        ev = self.explained_variance(batch)
        rows = []
        for p, m in enumerate(self.members):
            row: dict[str, Any] = {"update": update, "step": self.collector.global_step, "lr": lr,
                                   "clip_epsilon": m.clip_epsilon * alpha if m.objective == "clip" else None,
                                   **{k: float(v[p]) for k, v in stats.items()
                                      if k != "clip_fraction" or m.objective == "clip"}}
            if m.objective in ("kl_adaptive", "kl_fixed"):
                beta = float(self.objective.beta[p])
                row["kl"], row["kl_beta"] = float(kl[p]), beta
                if self.kl_rules[p] is not None:            # Sec. 4: adapt beta after the update
                    self.objective.beta[p] = self.kl_rules[p].next_beta(beta, float(kl[p]))
            row["explained_variance"] = float(ev[p])
            rows.append(row)
        return rows, diverged

    def learn(self, batch: TensorDict, alpha: float) -> tuple[dict[str, torch.Tensor], list[int]]:
        """K epochs of minibatch Adam steps on every live member's -L^{CLIP+VF+S}: the update's mean terms per
        member [P], and the members that went non-finite (dropped from then on)."""
        cfg, P = self.cfg, self.P
        sums: dict[str, torch.Tensor] = {}
        n = 0
        bad = torch.zeros(P, dtype=torch.bool, device=self.device)
        alpha_t = torch.tensor(alpha, dtype=torch.float32, device=self.device)   # a tensor: no recompile per update
        for mb in self.sampler(batch):
            self.adam.zero_grad()
            out = self.loss_step(mb, alpha_t)
            bad |= ~torch.isfinite(out["total"])
            self.adam.step(dead=~self.objective.alive | bad)     # a diverged member's gradient never reaches Adam
            terms = {"policy_loss": out["loss_objective"], "value_loss": out["loss_critic"] / max(cfg.value_coef, 1e-12),
                     "entropy": out["entropy"], "approx_kl": out["kl_approx"], "clip_fraction": out["clip_fraction"]}
            for k, v in terms.items():
                sums[k] = sums[k] + v if k in sums else v
            n += 1
        finite = torch.stack([torch.isfinite(p.detach().reshape(P, -1)).all(1) for p in self.params]).all(0)
        newly = [p for p in range(P) if self.alive[p] and (bool(bad[p]) or not bool(finite[p]))]
        for p in newly:
            self.objective.alive[p] = False
            self.alive[p] = False
        return {k: v / n for k, v in sums.items()}, newly

    @torch.no_grad()
    def mean_kl(self, batch: TensorDict) -> torch.Tensor:
        """d_p = E_t[KL[pi_old(.|s_t), pi(.|s_t)]] per member [P], after the update."""
        flat = batch.reshape(self.P, -1)
        total = torch.zeros(self.P, device=self.device)
        n = flat.batch_size[1]
        for part in flat.split(KL_CHUNK, dim=1):
            old = self.agent.dist({k: part[k] for k in self.agent.param_keys})
            new = self.agent.dist(self.agent.params(part[keys.OBSERVATION]))
            total += torch.distributions.kl_divergence(old, new).sum(1)
        return total / n

    @staticmethod
    def explained_variance(batch: TensorDict) -> torch.Tensor:
        """1 - Var[V_targ - V] / Var[V_targ] per member [P] (NaN where Var[V_targ] = 0)."""
        p = batch.batch_size[0]
        value, target = batch[keys.STATE_VALUE].reshape(p, -1), batch[keys.VALUE_TARGET].reshape(p, -1)
        var = target.var(1)
        return torch.where(var > 0, 1 - (target - value).var(1) / var, torch.full_like(var, float("nan")))

    # --- checkpoint state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "optimizer": self.adam.state_dict(),
                "objective": self.objective.state_dict(),
                "obs_norm": self.obs_norm.state_dict() if self.obs_norm else None,
                "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
                "generators": {"action": [g.get_state() for g in self.action_generators],
                               "sampler": [g.get_state() for g in self.sampler_generators]}}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.agent.load_state_dict(s["agent"])
        self.adam.load_state_dict(s["optimizer"])
        self.objective.load_state_dict(s["objective"])
        self.collector.alive[:] = self.objective.alive.cpu().numpy()
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(s["obs_norm"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(s["reward_scaler"])
        for g, st in zip(self.action_generators, s["generators"]["action"]):
            g.set_state(st)
        for g, st in zip(self.sampler_generators, s["generators"]["sampler"]):
            g.set_state(st)
