"""The PPO variants (issue 20) on the same stages: action masks, MultiDiscrete / MultiBinary actions, Dict
observations and recurrent (LSTM) policies -- the heads' distributions, the LSTM's sequence replay, the
tools on such runs, and the one-line refusals. Learning on the docs' small example envs (``examples/envs.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from helpers import tiny
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ppo_pipeline import config, launch
from ppo_pipeline.algo import distributions
from ppo_pipeline.algo.collect import Collector
from ppo_pipeline.algo.policy import Agent
from ppo_pipeline.algo.sampler import SequenceSampler
from ppo_pipeline.envs import make_vector_env
from ppo_pipeline.envs.seeds import env_seeds
from ppo_pipeline.run.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'tests'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
       "OMP_NUM_THREADS": "1"}


# ------------------------------------------------------------------------------------------------------
# Action masks: a masked action is never drawn, never the mode
# ------------------------------------------------------------------------------------------------------
def check_masked_draws(logits: torch.Tensor, mask: torch.Tensor, seed: int,
                       head_cls: type = distributions.MaskedCategoricalHead) -> None:
    head = head_cls(torch.nn.Identity())
    params = head(logits, mask)
    draws = torch.stack([head.draw(params, torch.Generator().manual_seed(seed + i)) for i in range(64)])
    allowed = torch.stack([mask.gather(-1, d.unsqueeze(-1)).squeeze(-1) for d in draws])
    assert allowed.all(), "a masked action was drawn"
    assert mask.gather(-1, head.mode(params).unsqueeze(-1)).all(), "a masked action is the mode"
    dist = distributions.build(head, params)
    # log-probs and entropy over the allowed actions: the probabilities of the allowed ones sum to 1
    probs = torch.stack([dist.log_prob(torch.full(mask.shape[:-1], a)).exp() for a in range(mask.shape[-1])], -1)
    assert torch.allclose((probs * mask).sum(-1), torch.ones(mask.shape[:-1]), atol=1e-5)
    assert torch.all(probs[~mask] == 0)


@st.composite
def masks_and_logits(draw: st.DrawFn):
    n = draw(st.integers(2, 9))
    b = draw(st.integers(1, 32))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    logits = torch.randn(b, n, generator=gen) * draw(st.sampled_from([0.1, 1.0, 10.0]))
    mask = torch.rand(b, n, generator=gen) < draw(st.sampled_from([0.2, 0.5, 0.9]))
    mask[torch.arange(b), torch.randint(0, n, (b,), generator=gen)] = True      # at least one allowed
    return logits, mask, draw(st.integers(0, 10_000))


@given(case=masks_and_logits())
def test_masked_actions_are_never_drawn_or_played(case):
    check_masked_draws(*case)


class UnmaskedSampler(distributions.MaskedCategoricalHead):
    def draw(self, params, generator=None):
        return distributions.CategoricalHead.draw(self, {"logits": params["logits"]}, generator)


def test_mutant_unmasked_sampler_is_caught():
    @settings(max_examples=40, phases=[Phase.generate], database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(case=masks_and_logits())
    def search(case):
        check_masked_draws(*case, head_cls=UnmaskedSampler)

    with pytest.raises(AssertionError):
        search()


# ------------------------------------------------------------------------------------------------------
# MultiDiscrete / MultiBinary: independent parts, log-prob and entropy summed
# ------------------------------------------------------------------------------------------------------
@given(nvec=st.lists(st.integers(2, 5), min_size=1, max_size=4), b=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_multi_discrete_is_independent_categoricals(nvec, b, seed):
    gen = torch.Generator().manual_seed(seed)
    head = distributions.MultiCategoricalHead(torch.nn.Identity(), nvec)
    params = head(torch.randn(b, sum(nvec), generator=gen))
    action = head.draw(params, gen)
    assert action.shape == (b, len(nvec)) and all((action[:, i] < n).all() for i, n in enumerate(nvec))
    dist = distributions.build(head, params)
    parts = [torch.distributions.Categorical(logits=x) for x in params["logits"].split(nvec, -1)]
    assert torch.allclose(dist.log_prob(action), sum(p.log_prob(action[:, i]) for i, p in enumerate(parts)), atol=1e-6)
    assert torch.allclose(dist.entropy(), sum(p.entropy() for p in parts), atol=1e-6)
    assert torch.equal(head.mode(params), torch.stack([p.probs.argmax(-1) for p in parts], -1))
    other = distributions.build(head, head(torch.randn(b, sum(nvec), generator=gen)))
    kl = torch.distributions.kl_divergence(dist, other)
    assert torch.allclose(kl, sum(torch.distributions.kl_divergence(p, q) for p, q in zip(parts, other.parts)))


@given(n=st.integers(1, 8), b=st.integers(1, 16), seed=st.integers(0, 2**31 - 1))
def test_multi_binary_is_independent_bernoullis(n, b, seed):
    gen = torch.Generator().manual_seed(seed)
    head = distributions.BernoulliHead(torch.nn.Identity())
    params = head(torch.randn(b, n, generator=gen) * 3)
    action = head.draw(params, gen)
    assert set(action.unique().tolist()) <= {0.0, 1.0}
    bern = torch.distributions.Bernoulli(logits=params["logits"])
    dist = distributions.build(head, params)
    assert torch.allclose(dist.log_prob(action), bern.log_prob(action).sum(-1), atol=1e-6)
    assert torch.allclose(dist.entropy(), bern.entropy().sum(-1), atol=1e-6)
    assert torch.equal(head.mode(params), (params["logits"] > 0).float())


# ------------------------------------------------------------------------------------------------------
# LSTM: the loss replays the collected sequences exactly
# ------------------------------------------------------------------------------------------------------
class NoResetCollector(Collector):
    """Mutant: the LSTM's state is carried across episode ends (never zeroed where an episode starts)."""

    def _fresh_state(self):
        return self.state


class CutSequences(SequenceSampler):
    """Mutant: minibatches of [M / T, T] blocks of single steps drawn across envs and times (cut sequences)."""

    def __call__(self, batch):
        envs, steps = batch.batch_size
        flat = batch.reshape(-1)
        for _ in range(self.epochs):
            perm = torch.randperm(envs * steps, generator=self.generator)
            yield from flat[perm].reshape(envs, steps).split(max(self.minibatch_size // steps, 1), dim=0)


def lstm_batch_ratios(tmp: Path, collector_cls: type = Collector, sampler_cls: type = SequenceSampler,
                      seed: int = 0) -> torch.Tensor:
    """Collect a batch with an LSTM policy (episodes end inside it), then compute, as the loss does in epoch 1
    before any step, log pi(a|s) - log pi_old(a|s) on the sampler's minibatches: all 0 when the replay is exact."""
    cfg = tiny(config.classic, tmp, env_id="examples.envs:CartPoleNoVel", policy="lstm", lstm_hidden=16,
               num_envs=4, num_steps=64, minibatch_size=128, seed=seed)
    envs = make_vector_env(cfg, cfg.num_envs)
    try:
        torch.manual_seed(seed)
        agent = Agent(envs.single_observation_space, envs.single_action_space, cfg)
        with torch.no_grad():        # weights away from the init, so that a wrong state changes the policy visibly
            for w in agent.parameters():
                w.copy_(torch.randn(w.shape) * 0.5)
        collector = collector_cls(envs, agent, cfg.num_steps, torch.device("cpu"))
        collector.reset(env_seeds(seed, cfg.num_envs))
        collector.collect()                       # a first batch: the second starts mid-episode
        batch = collector.collect()
    finally:
        envs.close()
    assert batch["is_init"][:, 1:].any(), "no episode started inside the batch: make episodes shorter"
    starts = batch["is_init"].squeeze(-1)
    # where an episode starts the stored state is 0: the state the policy acted with and the loss replays from
    # (torchrl's recurrent mode resumes from the stored state, so a state leaking across episodes would replay
    # "exactly" too: this is what catches it)
    leaked = max(float(batch[k][starts].abs().max()) for k in ("recurrent_state_h", "recurrent_state_c"))
    gaps = [torch.tensor(leaked)]
    with torch.no_grad():
        for mb in sampler_cls(1, cfg.minibatch_size, torch.Generator().manual_seed(0))(batch):
            new = agent.actor.get_dist(mb.select("observation", "is_init", "recurrent_state_h",
                                                 "recurrent_state_c").clone()).log_prob(mb["action"])
            gaps.append((new - mb["action_log_prob"]).abs().max())
    return torch.stack(gaps)


def test_lstm_loss_replays_the_collected_log_probs(tmp_path):
    """Epoch 1 before any step: the loss's recomputed log-probs are the collected ones (ratio = 1)."""
    gap = lstm_batch_ratios(tmp_path).max()
    assert gap < 1e-6, f"ratio != 1 (or a state not reset at an episode start): |log r| up to {float(gap)}"


@pytest.mark.parametrize("mutant", ["no reset at episode starts", "sequences cut across minibatches"])
def test_lstm_replay_mutants_are_caught(tmp_path, mutant):
    kw = {"collector_cls": NoResetCollector} if mutant.startswith("no reset") else {"sampler_cls": CutSequences}
    assert lstm_batch_ratios(tmp_path, **kw).max() > 1e-3


def test_lstm_ppo_loss_is_at_theta_old_in_epoch_one(tmp_path):
    """torchrl's ClipPPOLoss on a whole-trajectory minibatch: r = 1, so no clipping and L^CLIP = mean(A)."""
    cfg = tiny(config.classic, tmp_path, env_id="examples.envs:CartPoleNoVel", policy="lstm", lstm_hidden=16,
               num_envs=4, num_steps=32, minibatch_size=64, normalize_advantage=False)
    trainer = Trainer(cfg)
    try:
        trainer.collector.reset(env_seeds(0, 4))
        batch = trainer.collector.collect()
        trainer.ppo.gae(batch)
        mb = next(iter(trainer.ppo.sampler(batch)))
        assert mb.batch_size == torch.Size([2, 32])
        out = trainer.ppo.objective.loss(mb)
        assert float(out["clip_fraction"]) == 0.0
        assert torch.allclose(-out["loss_objective"], mb["advantage"].mean(), atol=1e-5)
    finally:
        trainer.ppo.envs.close()


# ------------------------------------------------------------------------------------------------------
# Runs of every kind: train, resume, play, export
# ------------------------------------------------------------------------------------------------------
KINDS = {
    "lstm": ["--env-id", "examples.envs:CartPoleNoVel", "--policy", "lstm", "--lstm-hidden", "16"],
    "masked": ["--env-id", "examples.envs:MaskedChain"],
    "masked-method": ["--env-id", "examples.envs:MaskedChainMethod"],
    "dict-image": ["--env-id", "examples.envs:DictImage", "--normalize-obs"],
    "multi-discrete": ["--env-id", "examples.envs:TargetCode"],
    "multi-binary": ["--env-id", "examples.envs:TargetBits"],
}
SHORT = ["--num-envs", "4", "--num-steps", "32", "--minibatch-size", "64", "--epochs", "2", "--total-steps", "512",
         "--eval-every", "2", "--eval-episodes", "2", "--torch-threads", "1", "--no-progress"]


def _py(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, timeout=600, cwd=ROOT)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_trains_plays_and_exports(tmp_path, kind):
    run = tmp_path / kind
    p = _py("recipes/classic_control.py", *KINDS[kind], *SHORT, "--run-dir", str(tmp_path), "--name", kind)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads((run / "summary.json").read_text())["status"] == "finished"
    p = _py("-m", "ppo_pipeline.play", str(run), "--episodes", "2", "--max-steps", "50")
    assert p.returncode == 0 and "mean return" in p.stdout, p.stderr[-2000:]
    p = _py("-m", "ppo_pipeline.export", str(run), "--out", str(tmp_path / "pi.pt2"))
    assert p.returncode == 0 and "wrote" in p.stdout, p.stderr[-2000:]
    files = {"ppo_pipeline.json": ""}
    torch.export.load(str(tmp_path / "pi.pt2"), extra_files=files)
    meta = json.loads(files["ppo_pipeline.json"])
    assert meta["recurrent"] == (kind == "lstm")
    assert ("dict" in meta["observation"]) == (kind in ("masked", "masked-method", "dict-image"))
    if kind.startswith("masked"):
        assert "allowed by action_mask" in p.stdout


@pytest.mark.parametrize("env_id,policy", [("examples.envs:CartPoleNoVel", "lstm"), ("examples.envs:MaskedChain", "mlp"),
                                           ("examples.envs:DictCartPole", "lstm")])
@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted(tmp_path, env_id, policy):
    """Checkpoints carry the LSTM's state and the Dict observations: a resumed run ends where an uninterrupted
    one ends (CPU, in-process envs)."""
    def cfg(name):
        return tiny(config.classic, tmp_path, env_id=env_id, policy=policy, lstm_hidden=16, num_envs=4, num_steps=32,
                    minibatch_size=64, total_steps=128 * 6, eval_every=3, eval_episodes=2, name=name)

    Trainer(cfg("whole")).train()
    Trainer(cfg("parts")).train(stop_after=2)
    from ppo_pipeline.run import checkpoint
    Trainer(cfg("parts")).train(resume_from=checkpoint.latest(tmp_path / "parts"))
    rows = [[r.split(",")[:-2] for r in (tmp_path / n / "metrics.csv").read_text().splitlines()] for n in ("whole", "parts")]
    assert rows[0] == rows[1]
    a, b = (checkpoint.load(checkpoint.latest(tmp_path / n))["agent"] for n in ("whole", "parts"))
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_masked_runs_never_take_a_masked_action(tmp_path):
    """Train on MaskedChain: not one illegal action (the env ends the episode with -10 on one: every episode
    return is >= 0), and evaluation reaches the end of the chain."""
    cfg = tiny(config.classic, tmp_path, env_id="examples.envs:MaskedChain", total_steps=20_000, eval_episodes=4)
    summary = Trainer(cfg).train()
    episodes = np.loadtxt(cfg.run_path() / "episodes.csv", delimiter=",", skiprows=1, ndmin=2)
    assert (episodes[:, 1] >= 0).all(), "a masked action was taken"
    assert summary["final_eval_return_mean"] == 1.0


# ------------------------------------------------------------------------------------------------------
# Learning: each kind on its small env
# ------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_lstm_learns_the_memory_task_the_mlp_cannot(tmp_path):
    """RepeatPrevious (act out the symbol of one step before, 15 points per episode; a policy without memory scores
    7.5), the classic preset, 20,480 steps, seed 0, one torch thread: the LSTM's last-100 mean is near the best and
    the MLP's stays at chance. Measured (2026-12-04, this machine): LSTM 14.8-14.9 for seeds 0-3, MLP 7.55 (the
    mean of 100 chance episodes has a standard deviation of ~0.2). The episode (16 steps) crosses rollouts, so the
    state carried from one rollout to the next and its reset at episode starts are in what is learnt.

    The partially observed CartPole (``examples.envs:CartPoleNoVel``) is the docs' example and results/pomdp-lstm's
    task (3 seeds at 100k: 182 +- 110 vs the MLP's 48 +- 4); this test was that run until 2026-12-04 and took
    over three minutes of the suite for a margin of ~10% over its threshold."""
    common = dict(env_id="examples.envs:RepeatPrevious", total_steps=20_480, eval_episodes=0, torch_threads=1)
    scores = {policy: Trainer(tiny(config.classic, tmp_path, policy=policy, name=policy, **common)).train()
              for policy in ("lstm", "mlp")}
    scores = {policy: summary["last100_return_mean"] for policy, summary in scores.items()}
    assert scores["lstm"] >= 13 and scores["mlp"] <= 9, scores


@pytest.mark.slow
# DictCartPole at 80k steps, last-100 return by seed (2026-12-02/03, this machine, 1 and 2 torch threads alike):
# 463.6 to 500.0 for seeds 0-11; CI's machine (another CPU, other rounding) gave 261.6 for seed 0. 150 is ~7x random
# play (~22): a Dict path that drops the pole key still fails.
@pytest.mark.parametrize("env_id,steps,threshold", [("examples.envs:DictCartPole", 80_000, 150),
                                                     ("examples.envs:TargetCode", 20_000, 7.5),
                                                     ("examples.envs:TargetBits", 20_000, 7.5),
                                                     ("examples.envs:MaskedChainMethod", 20_000, 0.99)])
def test_each_kind_learns(tmp_path, env_id, steps, threshold):
    cfg = tiny(config.classic, tmp_path, env_id=env_id, total_steps=steps, eval_episodes=0)
    summary = Trainer(cfg).train()
    assert summary["last100_return_mean"] >= threshold, summary["last100_return_mean"]


# ------------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv,needle", [
    (["--env-id", "variant_envs:TupleEnv"], "observation space Tuple"),
    (["--policy", "lstm", "--collector", "torchrl"], "policy=lstm needs --collector lean"),
    (["--policy", "lstm", "--minibatch-size", "48"], "whole env trajectories"),
    (["--env-id", "variant_envs:DictCartPole", "--collector", "torchrl"], "Dict observation space needs --collector lean"),
], ids=["tuple", "lstm-torchrl", "lstm-minibatch", "dict-torchrl"])
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, argv, needle):
    monkeypatch.syspath_prepend(str(ROOT / "tests"))
    with pytest.raises(SystemExit) as e:
        launch.main(config.classic, "t", [*argv, "--run-dir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not list(tmp_path.iterdir())                      # nothing started


def test_dict_entries_the_agent_cannot_read_are_refused():
    from ppo_pipeline.algo.policy import check_spaces
    from ppo_pipeline.errors import ConfigError

    act = gym.spaces.Discrete(2)
    for obs, needle in [(gym.spaces.Dict({"x": gym.spaces.Discrete(3)}), "entry 'x'"),
                        (gym.spaces.Dict({"img": gym.spaces.Box(0, 255, (20, 20, 3), np.uint8)}), "at least 36x36"),
                        (gym.spaces.Dict({"action_mask": gym.spaces.MultiBinary(3)}), r"MultiBinary\(2\)")]:
        with pytest.raises(ConfigError, match=needle):
            check_spaces(obs, act)
    with pytest.raises(ConfigError, match="action space"):
        check_spaces(gym.spaces.Box(-1, 1, (3,)), gym.spaces.Tuple((act, act)))
