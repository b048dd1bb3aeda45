"""Algorithm 1 of the paper: the stages of one run and one iteration of them.

    for iteration = 1, 2, ...:
        batch = collector.collect()             # N actors x T steps       -> TensorDict [N, T]
        gae(batch)                              # A_1..A_T (Eq. 11)        -> + advantage, value_target
        for mb in sampler(batch):               # K epochs, minibatch M <= NT
            loss = total_loss(objective(mb))    # -L^{CLIP+VF+S} (Eq. 9); one Adam step
        schedules (alpha), KL beta rule

One iteration is :meth:`PPO.update`. What happens around it (logging, evaluation cadence, checkpoints,
signals, hooks) is the run's: :class:`ppo_pipeline.run.trainer.Trainer`.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from typing import Any

import numpy as np
import torch
from tensordict import TensorDict

from ..config import Config
from ..envs import make_vector_env
from . import compiling
from .advantages import explained_variance, make_gae
from .collect import Collector
from .normalize import RewardScaler, make_obs_normalizer
from .objectives import (
    KLController,
    LossTotals,
    get_beta,
    make_loss,
    mean_kl,
    set_beta,
    set_clip_epsilon,
)
from .policy import Agent
from .sampler import MinibatchSampler, SequenceSampler
from .schedules import KLAdaptiveStepSize, log_std, schedule, step_size


class Diverged(RuntimeError):
    """The loss or the parameters went non-finite in an update: training cannot go on."""

    def __init__(self, loss: float, update: int, step: int):
        self.loss, self.update, self.step = loss, update, step
        what = f"loss ({loss})" if not np.isfinite(loss) else "parameters after the Adam steps"
        super().__init__(f"non-finite {what} in update {update} (step {step})")


class PPO:
    """The stages of one run (built from ``cfg`` over the batched env ``envs``) and Algorithm 1's iteration."""

    def __init__(self, cfg: Config, envs: Any, device: torch.device):
        self.cfg, self.envs, self.device = cfg, envs, device
        obs_space, act_space = envs.single_observation_space, envs.single_action_space
        self.obs_norm = make_obs_normalizer(obs_space, cfg.clip_obs) if cfg.normalize_obs else None
        self.reward_scaler = RewardScaler(cfg.num_envs, cfg.gamma, cfg.clip_reward) if cfg.scale_reward else None
        self.agent = Agent(obs_space, act_space, cfg).to(device)
        self.loss = make_loss(cfg, self.agent).to(device)
        self.gae = make_gae(cfg).to(device)
        self.params = list(self.agent.parameters())
        # Adam eps 1e-5 (37 details #3); the fused kernel (one call for all parameters, CPU and CUDA)
        self.optimizer = torch.optim.Adam(self.params, lr=cfg.lr, eps=cfg.adam_eps, fused=True)
        self.lr = step_size(cfg)        # Table 5: x alpha; Table 4: adapted to the KL after each update
        self.clip_epsilon = schedule(cfg.clip_epsilon, anneal=cfg.anneal, num_updates=cfg.num_updates)
        self.log_std = log_std(cfg) if self.agent.gaussian else None      # Table 4: LinearAnneal(-0.7, -1.6)
        compile_it = compiling.wanted_at_budget(cfg, pixels=self.agent.pixels, device=device, recurrent=self.agent.recurrent)
        # the update (loss + backward) and the collector's policy call, compiled where it pays
        self.update_step = compiling.MaybeCompiled(compiling.loss_step(self.loss), compile_it, "update",
                                                   before_retry=self.optimizer.zero_grad)
        self.agent.act = compiling.MaybeCompiled(self.agent.act, compile_it, "policy")
        if cfg.collector == "torchrl":   # torchrl's Collector / MultiSyncCollector, the same batch
            from .collect_torchrl import TorchRLCollector

            self.collector: Collector | TorchRLCollector = TorchRLCollector(
                envs, self.agent, cfg.num_steps, device, obs_norm=self.obs_norm, reward_scaler=self.reward_scaler,
                workers=cfg.collector_workers, make_envs=functools.partial(make_vector_env, cfg))
        else:
            self.collector = Collector(envs, self.agent, cfg.num_steps, device, obs_norm=self.obs_norm,
                                       reward_scaler=self.reward_scaler)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        sampler = SequenceSampler if self.agent.recurrent else MinibatchSampler   # whole trajectories for an LSTM
        self.sampler = sampler(cfg.epochs, cfg.minibatch_size, self.generator)
        self.kl_controller = KLController(cfg.kl_target) if cfg.objective == "kl_adaptive" else None
        self.phase_time: dict[str, float] = defaultdict(float)   # seconds per phase, this process

    def update(self, update: int) -> dict[str, Any]:
        """Iteration ``update`` (1-based) of Algorithm 1; returns its metrics row (losses, KL, schedules)."""
        cfg = self.cfg
        lr, eps = self.lr(update), self.clip_epsilon(update)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        set_clip_epsilon(self.loss, eps)
        if self.log_std is not None:
            self.agent.policy_head.set_log_std(self.log_std(update))

        t0 = time.perf_counter()
        batch = self.collector.collect()                  # TensorDict [N, T]
        t1 = time.perf_counter()
        self.gae(batch)                                    # + advantage, value_target
        t2 = time.perf_counter()
        stats = self.learn(batch, update)                  # K epochs x minibatches of Adam
        t3 = time.perf_counter()
        self.phase_time["collect"] += t1 - t0
        self.phase_time["gae"] += t2 - t1
        self.phase_time["update"] += t3 - t2

        row: dict[str, Any] = {"update": update, "step": self.collector.global_step, "lr": lr,
                               "clip_epsilon": eps if cfg.objective == "clip" else None, **stats}
        if self.log_std is not None:
            row["log_std"] = self.log_std(update)
        adaptive_lr = isinstance(self.lr, KLAdaptiveStepSize)
        if cfg.objective in ("kl_adaptive", "kl_fixed") or adaptive_lr:
            d = mean_kl(self.agent, batch)
            row["kl"] = d
            if adaptive_lr:                                # Table 4: the next update's step size
                self.lr.adapt(d)
        if cfg.objective in ("kl_adaptive", "kl_fixed"):
            row["kl_beta"] = get_beta(self.loss)           # the beta this update was trained with
            if self.kl_controller is not None:             # Sec. 4: adapt beta after the update
                set_beta(self.loss, self.kl_controller.next_beta(get_beta(self.loss), d))
        row["explained_variance"] = explained_variance(batch)
        return row

    def learn(self, batch: TensorDict, update: int) -> dict[str, float]:
        """K epochs of minibatch Adam steps on -L^{CLIP+VF+S}; the update's mean loss terms. Raises
        :class:`Diverged` when the loss or the parameters go non-finite."""
        cfg = self.cfg
        totals = LossTotals(cfg.value_coef)
        try:
            for mb in self.sampler(batch):
                self.optimizer.zero_grad(set_to_none=True)
                terms = self.update_step(mb)              # -L^{CLIP+VF+S} (Eq. 9), and its backward
                if cfg.max_grad_norm > 0:
                    torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
                self.optimizer.step()
                totals.add(terms)
            stats = totals.means()    # one device sync per update
        except (RuntimeError, ValueError):   # e.g. a distribution of NaN parameters refuses to sample
            if self.finite_parameters():
                raise
            stats = {"loss": float("nan")}
        if not np.isfinite(stats["loss"]) or not self.finite_parameters():
            raise Diverged(stats["loss"], update, self.collector.global_step)
        stats.pop("loss")
        return stats

    def finite_parameters(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.params)

    # --- what a checkpoint keeps of the algorithm (the run adds envs, logs, clocks: run/training_state.py) --
    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.agent.state_dict(), "optimizer": self.optimizer.state_dict(),
                "loss": self.loss.state_dict(),
                "obs_norm": self.obs_norm.state_dict() if self.obs_norm else None,
                "reward_scaler": self.reward_scaler.state_dict() if self.reward_scaler else None,
                "step_size": self.lr.state_dict() if isinstance(self.lr, KLAdaptiveStepSize) else None}

    def load_state_dict(self, s: dict[str, Any]) -> None:
        self.agent.load_state_dict(s["agent"])
        self.optimizer.load_state_dict(s["optimizer"])
        self.loss.load_state_dict(s["loss"])
        if self.obs_norm is not None:
            self.obs_norm.load_state_dict(s["obs_norm"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(s["reward_scaler"])
        if isinstance(self.lr, KLAdaptiveStepSize):
            self.lr.load_state_dict(s["step_size"])
