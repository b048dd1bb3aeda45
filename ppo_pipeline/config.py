"""Typed run configuration, the paper's presets, and validation into one-line errors.

Every field of :class:`Config` becomes a command-line option (see :mod:`ppo_pipeline.cli`), and the
config actually used is written to ``runs/<name>/config.json``.

Presets reproduce the paper (Schulman et al. 2017, arXiv 1707.06347):

* :func:`atari` -- Table 5 (Atari): 8 actors, T=128, 3 epochs, minibatch 32x8, Adam 2.5e-4*alpha,
  epsilon=0.1*alpha, c1=1, c2=0.01, gamma=0.99, lambda=0.95, 10M agent steps (= 40M frames),
  alpha annealed linearly 1 -> 0.
* :func:`mujoco` -- Table 3 (MuJoCo): 1 actor, T=2048, 10 epochs, minibatch 64, Adam 3e-4,
  epsilon=0.2 (Table 1's best), gamma=0.99, lambda=0.95, no entropy bonus, separate 64-64 tanh
  actor and critic, 1M steps (Sec. 6.1).
* :func:`roboschool` -- Table 4 (the humanoids of Sec. 6.3): 32 actors (128 for flagrun), T=512, 15 epochs,
  minibatch 4096, the Adam step size adapted to the KL after each update, gamma=0.99, lambda=0.95, the
  log stdev LinearAnneal(-0.7, -1.6), 50M steps (Figure 4); the values Table 4 leaves out are cited there.
* :func:`classic` -- small vector envs (CartPole & co.). The paper has no classic-control table; the
  values are rl-baselines3-zoo's tuned CartPole-v1 PPO hyperparameters, which solve CartPole
  within 100k steps.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

OBJECTIVES = ("clip", "kl_adaptive", "kl_fixed", "none")
LR_SCHEDULES = ("alpha", "kl_adaptive")
LOG_STD_MODES = ("learned", "anneal")
MAX_THREADS = 1024  # torch.set_num_threads(100000) crashes the process
MAX_RUN_SEED = 2**32 - 1  # numpy's seed range (np.random.seed, RandomState): what a run seed may be


def option(default: Any, help: str, *, choices: tuple | None = None, atari: bool = False) -> Any:
    """A :class:`Config` field with its ``--help`` text (and allowed values): one command-line option.
    ``atari``: the option means something for Atari games only (non-Atari recipes leave it out)."""
    meta: dict[str, Any] = {"help": help, "atari": atari}
    if choices is not None:
        meta["choices"] = choices
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Config:
    """One PPO run. Field names follow the paper's symbols where it has one."""

    # --- environment ---------------------------------------------------------------------------
    env_id: str = option(
        "CartPole-v1",
        "gymnasium environment id (Atari: ALE/Pong-v5 or Pong), your own "
        "env class as package.module:EnvClass, DMControl as dmc:DOMAIN-TASK, or "
        "a torchrl env factory as torchrl:package.module:function",
    )
    env_module: str = option(
        "", "a module to import before the env id is resolved (one that registers gymnasium ids), e.g. my_pkg"
    )
    num_envs: int = option(8, "N parallel actors (paper: 'N actors')")
    frame_skip: int = option(4, "Atari: frames per agent step, max-pooled over the last 2", atari=True)
    noop_max: int = option(30, "Atari: at most this many no-ops after a real reset", atari=True)
    frame_stack: int = option(4, "Atari: stacked frames per observation", atari=True)
    episodic_life: bool = option(True, "Atari: a lost life ends the training episode (stats count games)", atari=True)
    clip_reward_sign: bool = option(True, "Atari: train on sign(reward); stats keep the raw score", atari=True)
    normalize_obs: bool = option(False, "running observation normalization, then clip to +-clip_obs")
    clip_obs: float = option(10.0, "observation clip after normalization")
    scale_reward: bool = option(False, "divide rewards by the running std of the discounted return")
    clip_reward: float = option(10.0, "reward clip after scaling")
    vector_env: str = option(
        "auto", "env batching: sync (one process), async (a process per env), auto", choices=("auto", "sync", "async")
    )
    env_backend: str = option(
        "auto",
        "env implementation: gymnasium (wrappers + vector env), envpool (C++ "
        "batched envs), torchrl (torchrl's GymEnv; dmc:/torchrl: ids always), auto (the "
        "faster one measured for the env family)",
        choices=("auto", "gymnasium", "envpool", "torchrl"),
    )
    pixels: bool = option(
        False, "dmc: observe 84x84 RGB frames rendered by MuJoCo (uint8, CNN) instead of the state vector"
    )
    collector: str = option(
        "lean",
        "lean (ours: plain tensors per step, one TensorDict per batch) or torchrl "
        "(torchrl's Collector, MultiSyncCollector with collector_workers > 1); both "
        "emit the same batch",
        choices=("lean", "torchrl"),
    )
    collector_workers: int = option(1, "torchrl collector: processes stepping envs (num_envs split between them)")
    nproc_per_node: int = option(
        1,
        "ranks of this one run on this node: data-parallel PPO over torch.distributed, each rank stepping "
        "num_envs / ranks of the envs; the same run as one process (docs/ranks.md)",
    )
    nodes: int = option(
        1, "nodes of one run over ranks (--launcher slurm, or torchrun on each node): ranks = nodes x nproc_per_node"
    )
    rank_stats: str = option(
        "step",
        "over ranks, observation and reward statistics combined at every env step (step: exactly the one-process "
        "run) or once per update (update: as baselines' MPI code; ranks then step without waiting for each other)",
        choices=("step", "update"),
    )
    rank_learn: str = option(
        "auto",
        "over ranks, the K epochs of minibatch steps: sharded (each rank its rows of each minibatch, the gradients "
        "all-reduced per minibatch, as DD-PPO), replicated (the update's batch all-gathered once, every rank takes "
        "every step itself: no collective per minibatch), lead (the batch gathered on rank 0, which takes every step "
        "on its node's cores while the others wait, then sends them its weights) or auto (lead for CPU ranks on one "
        "node; else replicated for a vector-observation network whose minibatch share per rank is under 1024 rows, "
        "where a step is latency-bound, sharded otherwise)",
        choices=("auto", "sharded", "replicated", "lead"),
    )
    dist_backend: str = option(
        "auto",
        "torch.distributed backend of the ranks: auto (nccl on CUDA, gloo on CPU), gloo or nccl",
        choices=("auto", "gloo", "nccl"),
    )

    # --- budget & batch --------------------------------------------------------------------------
    total_steps: int = option(
        100_000, "agent steps to train for, rounded up to whole batches (Atari frames = steps x frame_skip)"
    )
    num_steps: int = option(128, "horizon T: steps per actor per batch")
    epochs: int = option(4, "K epochs over each fresh batch")
    minibatch_size: int = option(256, "samples per minibatch (must divide num_envs*num_steps)")

    # --- optimisation ------------------------------------------------------------------------------
    lr: float = option(2.5e-4, "Adam step size (times alpha when anneal is on)")
    adam_eps: float = option(1e-5, "Adam epsilon (37 details: 1e-5, not torch's 1e-8)")
    anneal: bool = option(True, "anneal alpha linearly 1 -> 0 over training (scales lr and clip_epsilon)")
    lr_schedule: str = option(
        "alpha",
        "Adam step size per update: alpha (lr, times alpha when anneal is on; Tables 3, "
        "5) or kl_adaptive (Table 4: after each update / 1.5 when the mean KL > 2 "
        "lr_kl_target, x 1.5 when < lr_kl_target / 2, kept in [lr_min, lr_max]; "
        "starts at lr)",
        choices=LR_SCHEDULES,
    )
    lr_kl_target: float = option(0.01, "d_targ of the KL-adaptive step size (--lr-schedule kl_adaptive)")
    lr_min: float = option(1e-5, "lower bound of the KL-adaptive step size")
    lr_max: float = option(1e-2, "upper bound of the KL-adaptive step size")
    max_grad_norm: float = option(0.5, "global gradient-norm clip (0 = off)")
    compile: str = option(
        "auto",
        "torch.compile the update (loss + backward): on, off, or auto = on for MLP nets "
        "with >= 20k minibatch steps (a pack's update: >= 5k) and on CUDA (where the bench shows it pays)",
        choices=("auto", "on", "off"),
    )

    # --- objective ----------------------------------------------------------------------------------
    objective: str = option(
        "clip", "surrogate: clip (Eq. 7), kl_adaptive / kl_fixed (Eq. 8), none (L^CPI)", choices=OBJECTIVES
    )
    clip_epsilon: float = option(0.2, "epsilon of L^CLIP (times alpha when anneal is on)")
    kl_target: float = option(0.01, "d_targ of the adaptive KL penalty")
    kl_beta: float = option(1.0, "beta: initial (kl_adaptive) or constant (kl_fixed) KL coefficient")
    gamma: float = option(0.99, "discount gamma")
    gae_lambda: float = option(0.95, "GAE lambda")
    value_coef: float = option(1.0, "c1, value-loss coefficient of Eq. 9")
    entropy_coef: float = option(0.01, "c2, entropy-bonus coefficient of Eq. 9")
    clip_value: float = option(0.0, "value-loss clipping radius (0 = off, the paper's choice)")
    normalize_advantage: bool = option(True, "standardize advantages per minibatch")

    # --- model --------------------------------------------------------------------------------------
    hidden_sizes: list = option([64, 64], "MLP hidden layer sizes (non-pixel envs)")
    shared_trunk: bool = option(False, "policy and value share the trunk (always true for Atari's CNN)")
    policy: str = option(
        "mlp",
        "mlp (feed-forward) or lstm (an LSTM after the encoder, MLP or Nature CNN; minibatches "
        "are whole env trajectories, the loss recomputes them from the stored state)",
        choices=("mlp", "lstm"),
    )
    lstm_hidden: int = option(128, "LSTM hidden units (--policy lstm)")
    log_std: str = option(
        "learned",
        "Box actions: the Gaussian's state-independent log stdev is learned (from "
        "log_std_init) or a schedule, anneal: linear from log_std_init to "
        "log_std_final over the run (Table 4)",
        choices=LOG_STD_MODES,
    )
    log_std_init: float = option(0.0, "initial log stdev of a Box action's Gaussian")
    log_std_final: float = option(0.0, "log stdev at the end of the run (--log-std anneal)")

    # --- run ----------------------------------------------------------------------------------------
    seed: int = option(
        0,
        "seed, 0 to 2**32 - 1; per-env seeds are derived from it without overlap across seeds "
        "(0..10000: seed*100000 + env; above: their own block, ppo_pipeline.envs.seeds)",
    )
    device: str = option("auto", "auto (cuda when available), cpu, cuda or cuda:N")
    torch_threads: int = option(0, "torch CPU threads (0 = one per core)")
    eval_every: int = option(0, "deterministic evaluation every N updates (0 = only at the end)")
    eval_episodes: int = option(10, "episodes per evaluation (0 = no evaluation)")
    eval_max_steps: int = option(27_000, "cap on an evaluation episode's agent steps")
    checkpoint_every: int = option(10, "write a checkpoint every N updates (and at the end)")
    callbacks: str = option(
        "",
        "hooks after each update and evaluation, module:Name[,module:Name] (a Callback "
        "class or a function making one; see ppo_pipeline.run.callbacks)",
    )
    run_dir: str = option("runs", "parent folder of run directories")
    name: str = option("", "run name (default: <env>__<objective>__s<seed>)")
    tensorboard: bool = option(True, "write TensorBoard events")
    progress: bool = option(True, "show a tqdm progress bar")
    capture_video: bool = option(
        False, "record the first episode of each evaluation to <run>/videos/ (MP4, also in TensorBoard and W&B)"
    )
    track: bool = option(False, "log to Weights & Biases (pip install -e .[wandb]; WANDB_MODE=offline works)")
    wandb_project: str = option("ppo-pipeline", "W&B project")
    wandb_entity: str = option("", "W&B entity (default: your W&B default)")
    wandb_group: str = option("", "W&B group (default: the sweep's directory name for sweep runs)")

    # ------------------------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        """NT, the samples in one fresh batch."""
        return self.num_envs * self.num_steps

    @property
    def num_updates(self) -> int:
        """Updates of the run: the whole batches that cover ``total_steps``, rounded up (a budget is the
        least a run trains: the paper's "1M steps" and "40M frames" are met, never cut short)."""
        return max(1, -(-self.total_steps // self.batch_size))

    @property
    def steps_run(self) -> int:
        """Agent steps the run trains: ``num_updates`` whole batches (>= ``total_steps``)."""
        return self.num_updates * self.batch_size

    def run_name(self) -> str:
        return self.name or f"{self.env_id.replace('/', '-').replace(':', '-')}__{self.objective}__s{self.seed}"

    def run_path(self) -> Path:
        return Path(self.run_dir) / self.run_name()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """A config from trusted values (ours); keys that are not fields are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_json(cls, data: Any, source: str) -> Config:
        """A config from a ``config.json`` someone may have edited: every value must have its field's
        type. Raises :class:`ConfigError` naming ``source`` and the first bad value."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source} is not a JSON object (it holds a {type(data).__name__})")
        for f in dataclasses.fields(cls):
            assert isinstance(f.type, str)  # `from __future__ import annotations`: each field's type is its name
            if f.name in data and not _has_type(data[f.name], f.type):
                raise ConfigError(f"{source}: {f.name}={data[f.name]!r} must be {_TYPE_WORDS[f.type]}")
            choices = f.metadata.get("choices")
            if f.name in data and choices and data[f.name] not in choices:
                raise ConfigError(f"{source}: {f.name}={data[f.name]!r} is unknown; allowed: {', '.join(choices)}")
        return cls.from_dict({k: float(v) if k in _FLOATS and isinstance(v, int) else v for k, v in data.items()})


def validate(cfg: Config) -> None:
    """Check every value of ``cfg`` on its own; raise :class:`ConfigError` with one line naming the bad value.

    Changes nothing, looks nothing up, touches no file: what needs the machine (is the env id registered,
    is the run folder writable, does the device exist) is :mod:`ppo_pipeline.run.prepare`'s.
    """

    def need(ok: bool, msg: str) -> None:
        if not ok:
            raise ConfigError(msg)

    need(cfg.objective in OBJECTIVES, f"objective {cfg.objective!r} is unknown; allowed: {', '.join(OBJECTIVES)}")
    need(
        cfg.lr_schedule in LR_SCHEDULES,
        f"lr_schedule {cfg.lr_schedule!r} is unknown; allowed: {', '.join(LR_SCHEDULES)}",
    )
    need(cfg.log_std in LOG_STD_MODES, f"log_std {cfg.log_std!r} is unknown; allowed: {', '.join(LOG_STD_MODES)}")
    for name in ("log_std_init", "log_std_final"):
        v = getattr(cfg, name)
        need(math.isfinite(v) and -20.0 <= v <= 2.0, f"{name}={v} must be in [-20, 2] (a log stdev)")
    for name in ("lr", "clip_epsilon", "kl_target", "kl_beta", "adam_eps", "lr_kl_target", "lr_min", "lr_max"):
        v = getattr(cfg, name)
        need(math.isfinite(v) and v > 0, f"{name}={v} must be > 0")
    for name in ("gamma", "gae_lambda"):
        v = getattr(cfg, name)
        need(math.isfinite(v) and 0.0 <= v <= 1.0, f"{name}={v} must be in [0, 1]")
    for name in ("value_coef", "entropy_coef", "clip_value", "max_grad_norm", "clip_obs", "clip_reward"):
        v = getattr(cfg, name)
        need(math.isfinite(v) and v >= 0, f"{name}={v} must be >= 0")
    for name in (
        "num_envs",
        "num_steps",
        "epochs",
        "minibatch_size",
        "total_steps",
        "frame_skip",
        "frame_stack",
        "checkpoint_every",
        "eval_max_steps",
    ):
        v = getattr(cfg, name)
        need(v >= 1, f"{name}={v} must be >= 1")
    need(0 <= cfg.seed <= MAX_RUN_SEED, f"seed={cfg.seed} must be in [0, {MAX_RUN_SEED}] (0 to 2**32 - 1)")
    for name in ("noop_max", "eval_every", "torch_threads", "eval_episodes"):
        v = getattr(cfg, name)
        need(v >= 0, f"{name}={v} must be >= 0")
    need(cfg.lr_min <= cfg.lr_max, f"lr_min={cfg.lr_min} must be <= lr_max={cfg.lr_max}")
    if cfg.lr_schedule == "kl_adaptive":
        need(
            cfg.lr_min <= cfg.lr <= cfg.lr_max,
            f"lr={cfg.lr} must be in [lr_min={cfg.lr_min}, lr_max={cfg.lr_max}] (where the KL-adaptive step size starts)",
        )
    need(cfg.collector_workers >= 1, f"collector_workers={cfg.collector_workers} must be >= 1")
    need(cfg.nproc_per_node >= 1, f"nproc_per_node={cfg.nproc_per_node} must be >= 1")
    need(cfg.nodes >= 1, f"nodes={cfg.nodes} must be >= 1")
    W = cfg.nproc_per_node * cfg.nodes
    if W > 1:
        ranks = f"nproc_per_node={cfg.nproc_per_node}" + (f" x nodes={cfg.nodes} = {W} ranks" if cfg.nodes > 1 else "")
        need(cfg.num_envs >= W, f"{ranks}: more ranks than envs (num_envs={cfg.num_envs})")
        need(cfg.num_envs % W == 0, f"{ranks} does not divide num_envs={cfg.num_envs}")
        need(cfg.collector == "lean", f"{ranks} needs --collector lean (the ranks' collector)")
    if cfg.collector_workers > 1:
        need(
            cfg.collector == "torchrl",
            f"collector_workers={cfg.collector_workers} needs --collector torchrl (the lean collector is one process)",
        )
        need(
            cfg.num_envs % cfg.collector_workers == 0,
            f"collector_workers={cfg.collector_workers} does not divide num_envs={cfg.num_envs}",
        )
        need(
            not (cfg.normalize_obs or cfg.scale_reward),
            f"collector_workers={cfg.collector_workers} with normalize_obs/scale_reward: the running statistics "
            f"live in one process; use --collector-workers 1 or --no-normalize-obs --no-scale-reward",
        )
    need(cfg.torch_threads <= MAX_THREADS, f"torch_threads={cfg.torch_threads} must be <= {MAX_THREADS}")
    need(cfg.lstm_hidden >= 1, f"lstm_hidden={cfg.lstm_hidden} must be >= 1")
    if cfg.policy == "lstm":
        need(
            cfg.collector == "lean",
            "policy=lstm needs --collector lean (torchrl's collector does not carry our LSTM "
            "state); drop --collector torchrl",
        )
        envs_per_minibatch = cfg.minibatch_size // cfg.num_steps
        need(
            cfg.minibatch_size % cfg.num_steps == 0 and cfg.num_envs % max(envs_per_minibatch, 1) == 0,
            f"policy=lstm trains on whole env trajectories: minibatch_size={cfg.minibatch_size} must be num_steps="
            f"{cfg.num_steps} times a divisor of num_envs={cfg.num_envs}",
        )
    need(len(cfg.hidden_sizes) >= 1, "hidden_sizes is empty; give at least one layer size, e.g. 64,64")
    need(all(int(h) >= 1 for h in cfg.hidden_sizes), f"hidden_sizes={cfg.hidden_sizes} must be >= 1 each")
    nb = cfg.batch_size
    need(
        cfg.minibatch_size <= nb,
        f"minibatch_size={cfg.minibatch_size} is larger than the batch num_envs*num_steps={nb}",
    )
    need(
        nb % cfg.minibatch_size == 0,
        f"minibatch_size={cfg.minibatch_size} does not divide the batch num_envs*num_steps={nb}; "
        f"divisors near it: {_near_divisors(nb, cfg.minibatch_size)}",
    )
    need(
        not cfg.capture_video or cfg.eval_episodes > 0,
        "capture_video records evaluation episodes: it needs eval_episodes >= 1",
    )
    check_device_spec(cfg.device)


def _near_divisors(n: int, m: int) -> str:
    divs = [d for d in range(1, n + 1) if n % d == 0]
    return ", ".join(str(d) for d in sorted(divs, key=lambda d: abs(d - m))[:3])


def check_device_spec(spec: str) -> None:
    """Raise :class:`ConfigError` unless ``spec`` is auto, cpu, cuda or cuda:N (whether it exists is
    :func:`ppo_pipeline.run.prepare.resolve_device`'s question, asked on the machine that runs)."""
    s = spec.strip().lower()
    idx = s.partition(":")[2]
    if s not in ("auto", "cpu", "cuda") and not (s.startswith("cuda:") and idx.isdigit()):
        raise ConfigError(f"device={spec!r} is unknown; allowed: auto, cpu, cuda, cuda:N")


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list": "a list of integers",
}
_FLOATS = {
    "clip_obs",
    "clip_reward",
    "lr",
    "adam_eps",
    "max_grad_norm",
    "clip_epsilon",
    "kl_target",
    "kl_beta",
    "gamma",
    "gae_lambda",
    "value_coef",
    "entropy_coef",
    "clip_value",
    "lr_kl_target",
    "lr_min",
    "lr_max",
    "log_std_init",
    "log_std_final",
}


def _has_type(value: Any, type_name: str) -> bool:
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    return isinstance(value, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in value)


# ------------------------------------------------------------------------------------------------------
# Presets
# ------------------------------------------------------------------------------------------------------
def atari(**overrides: Any) -> Config:
    """Paper Table 5 (Atari) hyperparameters; 10M agent steps = 40M frames (Sec. 6.2)."""
    c = Config(
        env_id="ALE/Pong-v5",
        num_envs=8,  # Table 5: number of actors 8
        num_steps=128,  # Table 5: horizon T 128
        epochs=3,  # Table 5: num. epochs 3
        minibatch_size=256,  # Table 5: minibatch size 32 x 8
        lr=2.5e-4,  # Table 5: Adam stepsize 2.5e-4 x alpha
        anneal=True,  # Table 5: alpha annealed linearly 1 -> 0
        clip_epsilon=0.1,  # Table 5: clipping parameter 0.1 x alpha
        value_coef=1.0,  # Table 5: VF coeff. c1 = 1
        entropy_coef=0.01,  # Table 5: entropy coeff. c2 = 0.01
        gamma=0.99,  # Table 5
        gae_lambda=0.95,  # Table 5
        total_steps=10_000_000,  # Sec. 6.2 / Table 6: 40M frames
        shared_trunk=True,  # Sec. 6.2: Nature-DQN CNN shared by policy and value
        eval_episodes=3,
        checkpoint_every=50,
    )
    return dataclasses.replace(c, **overrides)


def mujoco(**overrides: Any) -> Config:
    """Paper Table 3 (MuJoCo) hyperparameters, 1M steps (Sec. 6.1), epsilon=0.2 (Table 1's best)."""
    c = Config(
        env_id="Hopper-v5",
        num_envs=1,  # Sec. 6.1: one actor
        num_steps=2048,  # Table 3: horizon T 2048
        epochs=10,  # Table 3: num. epochs 10
        minibatch_size=64,  # Table 3: minibatch size 64
        lr=3e-4,  # Table 3: Adam stepsize 3e-4
        anneal=False,  # Table 3 has no annealing (CleanRL anneals; we follow the paper)
        clip_epsilon=0.2,  # Table 1: epsilon = 0.2 scores best (0.82)
        gamma=0.99,  # Table 3
        gae_lambda=0.95,  # Table 3
        entropy_coef=0.0,  # Sec. 6.1: no entropy bonus
        # Sec. 6.1 uses separate networks and gives no c1. One Adam and one global grad-norm clip
        # span both nets, so c1 decides how much of the 0.5 norm budget the critic takes:
        # 0.25 x squared error equals CleanRL's 0.5 x 0.5 x MSE, whose 1M-step returns we compare to.
        value_coef=0.25,
        hidden_sizes=[64, 64],  # Sec. 6.1: two hidden layers of 64 tanh units
        shared_trunk=False,  # Sec. 6.1: no parameter sharing
        total_steps=1_000_000,  # Sec. 6.1: one million timesteps
        # 37 details, continuous: obs normalization + clip 10, reward scaling + clip 10.
        # (The paper's baselines code normalizes observations too; Table 3 does not list it.)
        normalize_obs=True,
        scale_reward=True,
        eval_episodes=10,
        eval_every=25,
        checkpoint_every=10,
    )
    return dataclasses.replace(c, **overrides)


def classic(**overrides: Any) -> Config:
    """Small discrete/continuous vector envs. Not in the paper: rl-baselines3-zoo's CartPole-v1 PPO."""
    c = Config(
        env_id="CartPole-v1",
        num_envs=8,
        num_steps=32,
        epochs=20,
        minibatch_size=256,
        lr=1e-3,
        anneal=True,
        clip_epsilon=0.2,
        gamma=0.98,
        gae_lambda=0.8,
        entropy_coef=0.0,
        value_coef=0.5,
        total_steps=100_000,  # runs 392 batches of 256 = 100,352 steps
        eval_episodes=10,
        eval_every=50,
        checkpoint_every=50,
    )
    return dataclasses.replace(c, **overrides)


def roboschool(**overrides: Any) -> Config:
    """Paper Table 4 (the Roboschool humanoids of Sec. 6.3) on their Bullet ports; 50M steps (Figure 4).

    Table 4 gives no network, no clipping parameter and no d_targ for the step size: the choices beside the
    values say where they come from. Flagrun tasks take 128 actors (Table 4): ``--num-envs 128``, or
    ``--experiment figure4``, which sets each task's actors and budget."""
    c = Config(
        env_id="HumanoidBulletEnv-v0",  # RoboschoolHumanoid-v0's Bullet port (pybullet-envs-gymnasium 0.6.0)
        num_envs=32,  # Table 4: number of actors 32 (locomotion); 128 for flagrun
        num_steps=512,  # Table 4: horizon T 512
        epochs=15,  # Table 4: num. epochs 15
        minibatch_size=4096,  # Table 4: minibatch size 4096
        lr_schedule="kl_adaptive",  # Table 4: Adam stepsize "*", adjusted to the target value of the KL
        lr=3e-4,  # where the step size starts: Table 3's Adam stepsize (Table 4 gives none)
        lr_kl_target=0.01,  # d_targ: not in the paper; rsl_rl's desired_kl 0.01 and Table 1's middle d_targ
        lr_min=1e-5,  # bounds of the adapted step size: rsl_rl's (1e-5, 1e-2)
        lr_max=1e-2,
        anneal=False,  # no alpha schedule in Table 4
        clip_epsilon=0.2,  # not in Table 4: Table 1's best, and baselines ppo1 run_humanoid's clip_param
        gamma=0.99,  # Table 4: discount 0.99
        gae_lambda=0.95,  # Table 4: GAE lambda 0.95
        log_std="anneal",  # Table 4: log stdev. of action distribution LinearAnneal(-0.7, -1.6)
        log_std_init=-0.7,
        log_std_final=-1.6,
        entropy_coef=0.0,  # a scheduled stdev has a constant entropy: no bonus (as Sec. 6.1)
        value_coef=0.25,  # as the MuJoCo preset (separate networks, one Adam, one grad-norm clip)
        hidden_sizes=[64, 64],  # not in Sec. 6.3: Sec. 6.1's 64-64 tanh (baselines ppo1 run_humanoid: hid_size 64 x 2)
        shared_trunk=False,  # Sec. 6.1: no parameter sharing
        normalize_obs=True,  # as the MuJoCo preset (37 details; baselines' ppo1 normalizes observations)
        scale_reward=True,
        total_steps=50_000_000,  # Figure 4: RoboschoolHumanoid-v0's axis runs to 50M (flagruns: 100M)
        eval_episodes=10,
        eval_every=25,
        checkpoint_every=10,
    )
    return dataclasses.replace(c, **overrides)


PRESETS = {"atari": atari, "mujoco": mujoco, "classic": classic, "roboschool": roboschool}
