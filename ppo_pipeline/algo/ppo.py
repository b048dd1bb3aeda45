"""Algorithm 1 of the paper: the stages of one run (or of a pack of P runs) and one iteration of them.

    for iteration = 1, 2, ...:
        batch = collector.collect()             # N actors x T steps       -> TensorDict [N, T]
        gae(batch)                              # A_1..A_T (Eq. 11)        -> + advantage, value_target
        for mb in sampler(batch):               # K epochs, minibatch M <= NT
            loss = total_loss(objective(mb))    # -L^{CLIP+VF+S} (Eq. 9); one Adam step
        schedules (alpha, the KL-adaptive step size), KL beta rule

One iteration is :meth:`PPO.update`. What happens around it (logging, evaluation cadence, checkpoints,
signals, hooks) is the run's: :class:`ppo_pipeline.run.trainer.Trainer`.

**P members, one implementation.** A pack trains P runs that share everything but the seed and the objective's
hyperparameters as one computation (a solo run is P = 1): its envs are the P members' E envs each, member-major
(the batch [P x E, T]); each member has its own random generators (actions, minibatch order), normalization
statistics, epsilon, beta, step size and episodes. What differs with P is the stage objects alone:

===============  ======================================  ==========================================================
stage            one member (P = 1)                      P members (``stacking``: :mod:`ppo_pipeline.pack`)
===============  ======================================  ==========================================================
agent            :class:`~.policy.Agent`                 the members' agents stacked (``PackAgent``)
objective        torchrl's loss (:class:`~.objectives.TorchRLObjective`)  the member-wise Eqs. 6-9 (``MemberObjective``)
sampler          :class:`~.sampler.MinibatchSampler`     :class:`~.sampler.MemberSampler` ([P, M] minibatches)
===============  ======================================  ==========================================================

The collector, GAE, the Adam step (:class:`~.optim.MemberAdam`), the schedules and the KL rules are the same
objects at every P.

**W ranks, one run.** Over W processes (``ranks``, :mod:`.ranks`) each rank holds E / W of the envs and the same
objects; the collector, the normalizers and the sampler take the rank's share, and :meth:`PPO.learn` sums each
minibatch's gradient over the ranks before the clip and the Adam step (:func:`.ranks.ranked_step`), or (``--rank-learn
lead``, CPU ranks on one node) rank 0 alone takes the one-process update on all the node's cores and sends its weights. A pack over
W ranks is the same: each rank holds E / W of every member's envs ([P x E / W, T]), statistics per member.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from tensordict import TensorDict

from .. import batch as keys
from .. import workarounds
from ..config import Config
from ..envs import make_vector_env
from ..threads import cores, torch_threads
from . import compiling, distributions
from .advantages import explained_variance, make_gae
from .collect import Collector
from .normalize import DictObsNormalizer, RewardScaler, make_obs_normalizer
from .objectives import KLController, TorchRLObjective, objective_of
from .optim import MemberAdam
from .policy import Agent
from .ranks import ONE, Ranks, rank_learning, ranked_step
from .sampler import MemberSampler, MinibatchSampler, SequenceSampler
from .schedules import KLAdaptiveStepSize, log_std, schedule, step_size

PACK_COLLECT_THREADS = 1  # a pack collects on one torch thread (ppo_pipeline.threads.torch_threads)


class Diverged(RuntimeError):
    """The loss or the parameters went non-finite in an update: training cannot go on."""

    def __init__(self, loss: float, update: int, step: int):
        self.loss, self.update, self.step = loss, update, step
        what = f"loss ({loss})" if not np.isfinite(loss) else "parameters after the Adam steps"
        super().__init__(f"non-finite {what} in update {update} (step {step})")


class Stacking(Protocol):
    """How P members' stages become one (:data:`ppo_pipeline.pack.STACKING`)."""

    def agent(self, agents: Sequence[Agent]) -> Any: ...

    def objective(self, agent: Any, members: Sequence[Config], *, compile: bool, before_retry: Any) -> Any: ...

    def member_state(self, ppo: PPO, p: int) -> dict[str, Any]: ...

    def load_members(self, ppo: PPO, states: Sequence[dict[str, Any]]) -> None: ...


class PPO:
    """The stages of a run of ``members`` (one config, or P configs that can share: :mod:`ppo_pipeline.pack.plan`)
    over the batched env ``envs`` (P x num_envs envs, member-major) and Algorithm 1's iteration."""

    def __init__(
        self,
        members: Config | Sequence[Config],
        envs: Any,
        device: torch.device,
        stacking: Stacking | None = None,
        ranks: Ranks = ONE,
    ):
        self.members = [members] if isinstance(members, Config) else list(members)
        self.envs, self.device, self.stacking, self.ranks = envs, device, stacking, ranks
        cfg = self.cfg = self.members[0]
        P = self.P = len(self.members)
        if P > 1 and stacking is None:
            raise ValueError("a pack of several members needs their stacking (ppo_pipeline.pack.STACKING)")
        if ranks.many and cfg.collector != "lean":
            raise ValueError("a run over several ranks steps its envs with the lean collector")
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        axis = None if P == 1 else P  # statistics per member (a member axis first) in a pack
        self.obs_norm = (
            make_obs_normalizer(obs_space, cfg.clip_obs, members=axis, ranks=ranks) if cfg.normalize_obs else None
        )
        self.reward_scaler = (
            RewardScaler(envs.num_envs // P, cfg.gamma, cfg.clip_reward, members=axis, ranks=ranks)
            if cfg.scale_reward
            else None
        )
        solo = []
        for m in self.members:  # each member's initial weights are its solo run's
            torch.manual_seed(m.seed)
            solo.append(Agent(obs_space, act_space, m))
        self.agent = (solo[0] if P == 1 else self._stacking().agent(solo)).to(device)
        self.params = list(self.agent.parameters())
        # who shares the minibatch steps: the ranks (sharded), or no one (replicated: each rank takes them all;
        # lead: rank 0 takes them all on its node's cores, the others wait for its weights)
        self.rank_learning = rank_learning(cfg, ranks, self.agent.pixels)
        self.learner = ranks if self.rank_learning == "sharded" else ONE
        self.lead_threads = cfg.torch_threads or cores()  # --rank-learn lead: the node's cores, rank 0's
        compile_it = not ranks.many and compiling.wanted_at_budget(
            cfg, pixels=self.agent.pixels, device=device, recurrent=solo[0].recurrent, members=P
        )  # over ranks a minibatch's rows per rank vary: eager
        # Adam eps 1e-5 (37 details #3), one fused kernel; a pack's step (mask, per-member clip) compiles with its update
        self.adam = MemberAdam(
            self.params, P, lr=cfg.lr, eps=cfg.adam_eps, max_grad_norm=cfg.max_grad_norm, compile=compile_it and P > 1
        )
        # over ranks, the sampler normalizes the advantage over the whole minibatch, not the loss
        loss_cfgs = [
            dataclasses.replace(m, normalize_advantage=False) if self.learner.many else m for m in self.members
        ]
        if P == 1:
            self.objective: Any = TorchRLObjective(
                loss_cfgs[0], self.agent, compile=compile_it, before_retry=self.adam.zero_grad
            )
        else:
            self.objective = self._stacking().objective(
                self.agent, loss_cfgs, compile=compile_it, before_retry=self.adam.zero_grad
            )
        self.gae = make_gae(cfg).to(device)
        self.lr = [step_size(m) for m in self.members]  # Table 5: x alpha; Table 4: adapted to the KL
        self.clip_epsilon = [schedule(m.clip_epsilon, anneal=m.anneal, num_updates=m.num_updates) for m in self.members]
        self.log_std = log_std(cfg) if solo[0].gaussian else None  # Table 4: LinearAnneal(-0.7, -1.6)
        self.action_generators = [torch.Generator().manual_seed(m.seed) for m in self.members]
        self.sampler_generators = [torch.Generator().manual_seed(m.seed) for m in self.members]
        if cfg.collector == "torchrl":  # torchrl's Collector / MultiSyncCollector, the same batch (solo runs)
            from .collect_torchrl import TorchRLCollector

            assert not isinstance(self.obs_norm, DictObsNormalizer)  # check_envs: a Dict space needs the lean one
            self.collector: Any = TorchRLCollector(
                envs,
                self.agent,
                cfg.num_steps,
                device,
                generators=self.action_generators,
                obs_norm=self.obs_norm,
                reward_scaler=self.reward_scaler,
                workers=cfg.collector_workers,
                make_envs=functools.partial(make_vector_env, cfg),
            )
        else:
            self.collector = Collector(
                envs,
                self.agent,
                cfg.num_steps,
                device,
                members=P,
                generators=self.action_generators,
                obs_norm=self.obs_norm,
                reward_scaler=self.reward_scaler,
                compile=compile_it,
                collect_threads=PACK_COLLECT_THREADS if P > 1 else None,
                ranks=ranks,
            )
        normalize = self.learner.many and cfg.normalize_advantage  # over ranks the sampler normalizes each minibatch's
        if P > 1:
            self.sampler: Any = MemberSampler(
                cfg.epochs, cfg.minibatch_size, self.sampler_generators, self.learner, normalize
            )
        else:  # whole trajectories for an LSTM
            sampler = SequenceSampler if solo[0].recurrent else MinibatchSampler
            self.sampler = sampler(cfg.epochs, cfg.minibatch_size, self.sampler_generators[0], self.learner, normalize)
        self.kl_rules = [KLController(m.kl_target) if objective_of(m).adaptive_beta else None for m in self.members]
        self.alive = np.ones(P, dtype=bool)  # members still training (a diverged one of a pack idles)
        self.phase_time: dict[str, float] = defaultdict(float)  # seconds per phase, this process
        ranks.check_same(self.params)  # every rank starts from the same weights

    def _stacking(self) -> Stacking:
        """A pack's stacking (P > 1: __init__ refuses a pack without one)."""
        assert self.stacking is not None
        return self.stacking

    @workarounds.scoped()
    def update(self, update: int) -> tuple[list[dict[str, Any]], list[int]]:
        """Iteration ``update`` (1-based) of Algorithm 1 for every member: (a metrics row per member: losses, KL,
        schedules; the members whose loss or weights went non-finite in it). Runs with workarounds 1, 3 and 12 in
        place (:func:`ppo_pipeline.workarounds.scoped`), upstream's behaviour again when it returns."""
        lrs, eps = [s(update) for s in self.lr], [s(update) for s in self.clip_epsilon]
        self.adam.set_lr(lrs)
        self.objective.set_epsilon(eps)
        if self.log_std is not None:
            head = self.agent.policy_head
            assert isinstance(head, distributions.GaussianHead)  # a scheduled log stdev is a Gaussian head's
            head.set_log_std(self.log_std(update))

        t0 = time.perf_counter()
        batch = self.collector.collect()  # TensorDict [P x E, T]
        t1 = time.perf_counter()
        self.gae(batch)  # + advantage, value_target
        if self.learner is not self.ranks:  # --rank-learn replicated or lead: every rank's envs, on every rank
            batch = self.ranks.gather_envs(batch, self.P)
        t2 = time.perf_counter()
        members = batch if self.P == 1 else batch.reshape(self.P, -1, batch.batch_size[-1])  # [P, E, T]
        if self.rank_learning == "lead":
            stats, diverged = _learn_on_lead(self, members)
        else:
            stats, diverged = self.learn(members)  # K epochs x minibatches of Adam
        t3 = time.perf_counter()
        self.phase_time["collect"] += t1 - t0
        self.phase_time["gae"] += t2 - t1
        self.phase_time["update"] += t3 - t2
        if self.ranks.many:  # (inside collect and update: the time the collectives took, waits included)
            self.phase_time["collectives"] = self.ranks.seconds

        rows = _after_update(self, update, members, lrs, eps, stats)  # each member's row; the KL rules
        return rows, diverged

    def learn(self, batch: TensorDict) -> tuple[dict[str, torch.Tensor], list[int]]:
        """K epochs of minibatch Adam steps on every live member's -L^{CLIP+VF+S} (batch [N, T], a pack's
        [P, E, T]): the update's mean terms per member [P], and the members that went non-finite in it (a pack
        drops them from its loss and steps from then on; a solo run stops)."""
        P = self.P
        sums: dict[str, torch.Tensor] = {}
        n = 0
        bad = torch.zeros(P, dtype=torch.bool, device=self.device)
        dead = None if P == 1 else torch.from_numpy(~self.alive).to(self.device)
        try:  # the minibatches without ("next", ...): GAE has read it (~45 us less per minibatch to gather)
            for mb in self.sampler(batch.exclude(keys.NEXT)):
                self.adam.zero_grad()
                if self.learner.many:  # this rank's rows of the minibatch; gradients summed over the ranks
                    terms = ranked_step(self.objective, self.params, self.learner, mb, batch, self.cfg)
                else:
                    terms = self.objective.step(mb)  # -L^{CLIP+VF+S} (Eq. 9) per member, and its backward
                if dead is not None:  # a pack: a diverged member's gradient never reaches Adam (one sync, below)
                    bad |= ~torch.isfinite(terms["loss"])
                    self.adam.step(dead | bad)
                else:
                    self.adam.step()
                for k, v in terms.items():
                    sums[k] = sums[k] + v if k in sums else v
                n += 1
        except (RuntimeError, ValueError):  # e.g. a distribution of NaN parameters refuses to sample
            if self.finite_members().all():
                raise
            sums, n = {"loss": torch.full((P,), float("nan"))}, 1
        means = {k: v / n for k, v in sums.items()}
        finite = self.finite_members() & torch.isfinite(means["loss"]).cpu() & ~bad.cpu()
        newly = [p for p in range(P) if self.alive[p] and not bool(finite[p])]
        if newly:
            self.set_alive([bool(a) and p not in newly for p, a in enumerate(self.alive)])
        self.last_loss = means.pop("loss")  # each member's mean Eq. 9 total (the NaN stop's line names it)
        return means, newly

    def set_alive(self, alive: Sequence[bool]) -> None:
        """Which members still train: a stopped member's envs idle and its loss and Adam steps are left out."""
        self.alive[:] = alive
        if self.P > 1:
            self.collector.alive[:] = self.alive
            self.objective.alive.copy_(torch.from_numpy(self.alive))

    def finite_members(self) -> torch.Tensor:
        """[P] bool: each member's weights are all finite."""
        return torch.stack([torch.isfinite(p.detach().reshape(self.P, -1)).all(1) for p in self.params]).all(0).cpu()

    # --- what a checkpoint keeps of the algorithm, member by member (the run adds envs, logs, clocks:
    # ppo_pipeline.run.training_state); every member's in the solo format, so a member is a run -----------------
    def member_state(self, p: int) -> dict[str, Any]:
        """Member p's algorithm state as a solo run's: agent, optimizer (Adam's moments), loss (beta), normalization
        statistics, step size, random generators."""
        if self.P == 1:
            state = {
                "agent": self.agent.state_dict(),
                "optimizer": self.adam.state_dict(),
                "loss": self.objective.state_dict(),
                "obs_norm": self.obs_norm.state_dict() if self.obs_norm else None,
                "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
            }
        else:
            state = self._stacking().member_state(self, p)
        rule = self.lr[p]
        state["step_size"] = rule.state_dict() if isinstance(rule, KLAdaptiveStepSize) else None
        state["generators"] = {
            "action": self.action_generators[p].get_state(),
            "sampler": self.sampler_generators[p].get_state(),
        }
        return state

    def load_member_states(self, states: Sequence[dict[str, Any]]) -> None:
        """Inverse of :meth:`member_state`, for every member (checkpoints of earlier versions: what they hold)."""
        if self.P == 1:
            s = states[0]
            self.agent.load_state_dict(s["agent"])
            self.adam.load_state_dict(s["optimizer"])
            self.objective.load_state_dict(s["loss"])
            if self.obs_norm is not None:
                self.obs_norm.load_state_dict(s["obs_norm"])
            if self.reward_scaler is not None:
                self.reward_scaler.load_state_dict(s["reward_scaler"])
        else:
            self._stacking().load_members(self, states)
        for p, s in enumerate(states):
            rule = self.lr[p]
            if isinstance(rule, KLAdaptiveStepSize):
                rule.load_state_dict(s["step_size"])
            generators = s.get("generators") or {"sampler": s.get("rng", {}).get("sampler")}
            for g, key in ((self.action_generators[p], "action"), (self.sampler_generators[p], "sampler")):
                if generators.get(key) is not None:
                    g.set_state(generators[key])


ONE_THREAD_ROWS = 256  # rows of a minibatch (a pack's: all members') up to which an MLP update is faster on one thread


def one_thread_pays(cfg: Config, agent: Agent | Any, members: int = 1) -> bool:
    """Whether a run's torch calls are too small to gain from a second CPU thread (``agent``: an Agent or a
    pack's PackAgent): a feed-forward MLP policy (no CNN, no LSTM) on the CPU whose minibatch (times its members:
    a pack stacks them) is at most ``ONE_THREAD_ROWS`` rows. Between its small ops the loss's Python leaves
    OpenMP's threads idle long enough to fall asleep, so each parallel op pays their wake-up: measured, whole
    updates alternating 1 and 2 threads in one process (2-core reference CPU), CartPole (4 x 128, minibatches of
    128) 67 vs 76 ms, Hopper (2048, minibatches of 64) 1.17 vs 1.26 s; the update of minibatches of 512 rows
    breaks even, of 1,024 is faster on 2."""
    return (
        torch.device(cfg.device).type == "cpu"
        and not agent.pixels
        and not agent.recurrent
        and cfg.minibatch_size * members <= ONE_THREAD_ROWS
    )


def _learn_on_lead(ppo: PPO, batch: TensorDict) -> tuple[dict[str, torch.Tensor], list[int]]:
    """:meth:`PPO.learn` over ranks with ``--rank-learn lead``: rank 0 takes every minibatch step on the whole batch
    (every rank's envs) with its node's cores while the other ranks wait; then its weights, the update's terms and
    the members that went non-finite reach every rank (:meth:`~.ranks.Ranks.from_lead_`). Adam's moments live on
    rank 0 alone (the run's checkpoint is rank 0's)."""
    verdict: list[Any] = [None]
    if ppo.ranks.lead:
        with torch_threads(ppo.lead_threads):
            stats, newly = ppo.learn(batch)
        verdict = [({k: v.cpu() for k, v in stats.items()}, newly, ppo.last_loss.cpu())]
    ppo.ranks.from_lead_(ppo.params, verdict)
    stats, newly, last_loss = verdict[0]
    if not ppo.ranks.lead:
        ppo.last_loss = last_loss
        if newly:
            ppo.set_alive([bool(a) and p not in newly for p, a in enumerate(ppo.alive)])
    return stats, newly


def _after_update(
    ppo: PPO, update: int, members: TensorDict, lrs: list[float], eps: list[float], stats: dict[str, torch.Tensor]
) -> list[dict[str, Any]]:
    """After an update: each member's metrics row (losses, schedules, KL, explained variance) and the rules that
    follow the KL (Sec. 4's beta, Table 4's step size), the mean KL and explained variance over every rank."""
    kl_wanted = [objective_of(m).penalized or isinstance(r, KLAdaptiveStepSize) for m, r in zip(ppo.members, ppo.lr)]
    over = ppo.learner  # the ranks whose rows ``members`` holds (a replicated learner's batch has every rank's)
    kl = (over.sum_(ppo.objective.mean_kl(members)) / over.world).tolist() if any(kl_wanted) else None
    ev = explained_variance(members, ppo.P, over)
    beta = [float(b) for b in ppo.objective.beta]
    rows = []
    for p, m in enumerate(ppo.members):
        spec = objective_of(m)
        row: dict[str, Any] = {
            "update": update,
            "step": ppo.collector.global_step,
            "lr": lrs[p],
            "clip_epsilon": eps[p] if spec.clipped else None,
            **{k: float(v[p]) for k, v in stats.items() if k != "clip_fraction" or spec.clipped},
        }
        if ppo.log_std is not None:
            row["log_std"] = ppo.log_std(update)
        kl_rule, lr_rule = ppo.kl_rules[p], ppo.lr[p]
        if kl_wanted[p]:
            assert kl is not None  # measured above: some member wants it
            row["kl"] = kl[p]
            if isinstance(lr_rule, KLAdaptiveStepSize):  # Table 4: the next update's step size
                lr_rule.adapt(kl[p])
        if spec.penalized:
            row["kl_beta"] = beta[p]  # the beta this update was trained with
            if kl_rule is not None:  # Sec. 4: adapt beta after the update
                assert kl is not None  # a penalized member wants the KL
                beta[p] = kl_rule.next_beta(beta[p], kl[p])
        row["explained_variance"] = float(ev[p])
        rows.append(row)
    ppo.objective.set_beta(beta)
    return rows
