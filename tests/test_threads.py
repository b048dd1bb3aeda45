"""torch threads from the cores the machine's other processes leave free (ppo_pipeline.threads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from ppo_pipeline import threads


class FakeMachine:
    """Scripted CPU ticks: ``others`` cores' worth of other processes' work per second of wall time."""

    def __init__(self, monkeypatch, cores: int):
        self.t, self.busy, self.own, self.others = 0.0, 0, 0, 0.0
        hz = os.sysconf("SC_CLK_TCK")
        monkeypatch.setattr(threads, "cores", lambda: cores)
        monkeypatch.setattr(threads, "machine_busy_ticks", lambda: self.busy)
        monkeypatch.setattr(threads, "own_ticks", lambda root=None: self.own)
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.t)
        monkeypatch.setattr(threads.time, "sleep", lambda s: self.advance(s))
        self.hz = hz

    def advance(self, seconds: float, own: float = 1.0) -> None:
        """``seconds`` pass with this run busy on ``own`` cores and the others on ``self.others``."""
        self.t += seconds
        self.own += int(own * seconds * self.hz)
        self.busy += int((own + self.others) * seconds * self.hz)


@pytest.mark.parametrize("cores,others,expected", [(2, 0.0, 2), (2, 0.4, 2), (2, 0.7, 1), (2, 1.9, 1),
                                                    (8, 3.0, 5), (8, 9.0, 1)])
def test_threads_are_the_cores_others_leave_free(monkeypatch, cores, others, expected):
    m = FakeMachine(monkeypatch, cores)
    m.others = others
    t = threads.Threads(0)
    assert t.count == expected and torch.get_num_threads() == expected


def test_threads_follow_the_load_between_updates(monkeypatch):
    """Two runs started together settle on one thread each; left alone, a run goes back to all cores."""
    m = FakeMachine(monkeypatch, 2)
    t = threads.Threads(0)
    assert t.count == 2
    m.others = 1.8                                 # another run started, spinning two threads
    m.advance(threads.CHECK_EVERY_S / 2)
    t.check()
    assert t.count == 2                            # not looked at again yet: a check costs nothing
    m.advance(threads.CHECK_EVERY_S)
    t.check()
    assert t.count == 1 and torch.get_num_threads() == 1
    m.others = 0.0                                 # it ended
    m.advance(threads.CHECK_EVERY_S + 0.1)
    t.check()
    assert t.count == 2 and torch.get_num_threads() == 2


def test_forced_and_slurm_counts_are_kept(monkeypatch):
    m = FakeMachine(monkeypatch, 2)
    m.others = 1.9
    assert threads.Threads(3).count == 3            # --torch-threads N forces N
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    t = threads.Threads(0)
    assert t.count == 4                             # the allocation is the run's
    m.advance(10)
    t.check()
    assert t.count == 4


def test_own_ticks_count_this_process_and_its_children():
    """Env workers are this run's own work, not another process's."""
    before = threads.own_ticks()
    busy = "import time\nwhile time.process_time() < 0.8: pass\nprint('busy', flush=True)\ntime.sleep(2)"
    child = subprocess.Popen([sys.executable, "-c", busy], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "busy"     # 0.8 s of its own CPU spent (however loaded the machine)
    during = threads.own_ticks()
    child.wait()
    assert during - before >= 0.5 * os.sysconf("SC_CLK_TCK")      # the child's busy second is counted as ours


def test_torch_threads_is_set_inside_and_set_back_after():
    """A pack collects on one thread and learns on the run's count: the block's count, then the one before,
    also when the block raises."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with threads.torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), threads.torch_threads(1):
            raise RuntimeError("in the block")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_pack_collects_on_one_thread_and_learns_on_the_runs(monkeypatch):
    """The pack's collector switches to COLLECT_THREADS around its rollout and back after it."""
    import gymnasium as gym
    import numpy as np

    from ppo_pipeline import config
    from ppo_pipeline.algo.collect import Collector
    from ppo_pipeline.algo.policy import Agent
    from ppo_pipeline.algo.ppo import PACK_COLLECT_THREADS as COLLECT_THREADS
    from ppo_pipeline.pack.agent import PackAgent

    seen = []
    envs = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    agents = [Agent(envs.single_observation_space, envs.single_action_space, config.classic()) for _ in range(2)]
    pack = PackAgent(agents)
    act = pack.act
    monkeypatch.setattr(pack, "act", lambda *a, **k: (seen.append(torch.get_num_threads()), act(*a, **k))[1])
    collector = Collector(envs, pack, 4, torch.device("cpu"), members=2, collect_threads=COLLECT_THREADS,
                          generators=[torch.Generator().manual_seed(p) for p in range(2)])
    collector.reset([0, 1])
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        batch = collector.collect()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        envs.close()
    assert seen == [COLLECT_THREADS] * 4 and batch.batch_size == torch.Size([2, 4]) and np.all(np.isfinite(
        batch["action_log_prob"].numpy()))


def test_a_look_from_the_commands_start_needs_no_wait(monkeypatch):
    """look_from_now (a recipe's process, as it starts): the first Threads made at least FIRST_LOOK_S later settles
    on what the machine did since, without sleeping; the look is used once, the next Threads looks (and waits)."""
    m = FakeMachine(monkeypatch, 2)
    monkeypatch.setattr(threads, "_early_mark", None)
    m.others = 0.9
    threads.look_from_now()
    m.advance(1.5)                                  # the start-up: imports, building the envs
    t = threads.Threads(0)
    assert t.count == 1 and m.t == 1.5              # settled on the start-up's look, no sleep
    m.others = 0.0
    u = threads.Threads(0)
    assert u.count == 2 and m.t == 1.5 + threads.FIRST_LOOK_S   # its own look, waited for
    threads.look_from_now()
    m.advance(threads.FIRST_LOOK_S / 2)             # too short a look: waits the full one
    threads.Threads(0)
    assert m.t == pytest.approx(1.5 + threads.FIRST_LOOK_S * 2.5)


def test_limit_caps_the_machines_count_not_a_forced_one(monkeypatch):
    """Threads.limit(1): one thread at once and at every later look, however many cores are free; a forced
    count (--torch-threads N, SLURM's allocation) stays."""
    m = FakeMachine(monkeypatch, 8)
    t = threads.Threads(0)
    assert t.count == 8
    t.limit(1)
    assert t.count == 1 and torch.get_num_threads() == 1
    m.advance(threads.CHECK_EVERY_S + 0.1)
    t.check()
    assert t.count == 1 and torch.get_num_threads() == 1
    forced = threads.Threads(3)
    forced.limit(1)
    assert forced.count == 3 and torch.get_num_threads() == 3


def test_one_thread_pays_for_small_mlp_updates_only():
    """The rule (measured in docs/speed.md): feed-forward MLPs on the CPU with minibatches (x members) of at most
    ONE_THREAD_ROWS rows; not the CNN, not the LSTM, not a pack of 8 Hopper runs (512 rows), not Table 4's 4096."""
    import gymnasium as gym

    from ppo_pipeline import config
    from ppo_pipeline.algo.policy import Agent
    from ppo_pipeline.algo.ppo import ONE_THREAD_ROWS, one_thread_pays

    def agent(cfg, obs):
        return Agent(obs, gym.spaces.Discrete(2), cfg)

    vec = gym.spaces.Box(-1, 1, (4,))
    pixels = gym.spaces.Box(0, 255, (4, 84, 84), dtype="uint8")
    cartpole = config.classic(num_envs=4, num_steps=128, minibatch_size=128, device="cpu")
    hopper = config.mujoco(device="cpu")
    assert ONE_THREAD_ROWS == 256
    assert one_thread_pays(cartpole, agent(cartpole, vec)) and one_thread_pays(hopper, agent(hopper, vec))
    assert one_thread_pays(hopper, agent(hopper, vec), members=4)                  # 256 rows
    assert not one_thread_pays(hopper, agent(hopper, vec), members=8)              # 512 rows
    atari = config.atari(device="cpu", minibatch_size=128)
    assert not one_thread_pays(atari, agent(atari, pixels))
    lstm = config.classic(policy="lstm", device="cpu", num_envs=8, num_steps=32, minibatch_size=128)
    assert not one_thread_pays(lstm, agent(lstm, vec))
    table4 = config.roboschool(device="cpu")
    assert not one_thread_pays(table4, agent(table4, vec))
    assert not one_thread_pays(config.classic(device="cuda", minibatch_size=128), agent(cartpole, vec))
