"""One run over W ranks is the one-process run (issue 27): real torch.distributed ranks (gloo, 2 processes), the
parameters after each of the first updates equal to the one-process run's with the same config and seed; and the
mutants a data-parallel PPO must not have are caught by the same comparison."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import helpers
import pytest
import torch
import torch.multiprocessing as mp
from helpers import tiny

from ppo_pipeline import config
from ppo_pipeline.algo import ranks as ranks_module
from ppo_pipeline.algo.ppo import PPO
from ppo_pipeline.algo.ranks import Ranks, RowShare
from ppo_pipeline.envs import make_vector_env
from ppo_pipeline.envs.seeds import env_seeds
from ppo_pipeline.pack import STACKING
from ppo_pipeline.run import checkpoint

UPDATES = 3
CASES = {
    "cartpole": dict(preset=config.classic, env_id="CartPole-v1", num_envs=4, num_steps=32, minibatch_size=32, epochs=2),
    # Box actions (noise drawn ahead), observation normalization and reward scaling moved at every env step
    "pendulum-normalized": dict(preset=config.mujoco, env_id="Pendulum-v1", num_envs=4, num_steps=64,
                                minibatch_size=64, epochs=2, normalize_obs=True, scale_reward=True),
    # an LSTM on a POMDP: minibatches of whole env trajectories, each rank holding its envs' (and their states)
    "cartpolenovel-lstm": dict(preset=config.classic, env_id="examples.envs:CartPoleNoVel", policy="lstm",
                               num_envs=4, num_steps=32, minibatch_size=64, epochs=2),
    # the Nature CNN on Pong frames (envpool: each rank's pool seeded with its envs' seeds)
    "pong-cnn": dict(preset=config.atari, env_id="ALE/Pong-v5", num_envs=4, num_steps=16, minibatch_size=32,
                     epochs=1, env_backend="envpool"),
}


def _cfg(tmp, case, rank_learn="sharded"):
    """``case``'s tiny config; over ranks each minibatch's rows shared (sharded) unless said otherwise."""
    kw = dict(CASES[case])
    preset = kw.pop("preset")
    return tiny(preset, tmp, total_steps=kw["num_envs"] * kw["num_steps"] * UPDATES, torch_threads=1,
                eval_episodes=0, rank_learn=rank_learn, **kw)


def params_after_updates(cfg, ranks: Ranks, mutant: str | None = None) -> list[list[torch.Tensor]]:
    """The weights after each of UPDATES updates of ``cfg`` (a list of configs: a pack of them) on this rank (its
    share of the envs; of a pack, its share of each member's envs, member-major as the trainer holds them)."""
    members = cfg if isinstance(cfg, list) else [cfg]
    cfg = members[0]
    torch.set_num_threads(1)
    checkpoint.seed_everything(cfg.seed)
    share = ranks.envs
    P = len(members)
    envs = make_vector_env(cfg, P * (share.stop - share.start), pack=P > 1)
    ppo = PPO(members if P > 1 else cfg, envs, torch.device(cfg.device), stacking=STACKING if P > 1 else None,
              ranks=ranks)
    seeds = []
    for m in members:
        mine = env_seeds(m.seed, m.num_envs)
        if mutant == "same-env-seeds":  # every rank seeds its envs as the first ones (baselines' make_mujoco_env)
            seeds += mine[: share.stop - share.start]
        else:
            seeds += mine[share.start : share.stop]
    ppo.collector.reset(seeds)
    out = []
    for u in range(1, UPDATES + 1):
        ppo.update(u)
        out.append([p.detach().cpu().clone() for p in ppo.params])
    if mutant is None:  # every rank holds the weights rank 0 reports (a mutant's may differ: compared above)
        ranks.check_same(ppo.params)
    envs.close()
    return out


def _rank_main(rank: int, world: int, port: int, cfg, mutant, out_path: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    first = cfg[0] if isinstance(cfg, list) else cfg  # a pack: its members' configs
    nccl = first.dist_backend == "nccl"
    if nccl:
        torch.cuda.set_device(0)  # the ranks share the one GPU
    dist.init_process_group("nccl" if nccl else "gloo", rank=rank, world_size=world)
    try:
        ranks = Ranks(rank, world, first.num_envs, first.device)
        if mutant:
            _apply_mutant(mutant, ranks)
        result = params_after_updates(cfg, ranks, mutant)
        if rank == 0:
            torch.save(result, out_path)
    finally:
        dist.destroy_process_group()


def _apply_mutant(mutant: str, ranks: Ranks) -> None:
    if mutant == "no-gradient-all-reduce":  # each rank steps on its own rows' gradient
        original = Ranks.sum_

        def sum_grads_skipped(self, x):
            return x if x.numel() > 8 else original(self, x)

        Ranks.sum_ = sum_grads_skipped
    elif mutant == "per-rank-advantage-normalization":
        original = Ranks.sum_

        def local_moments(self, x):  # the sampler's (n, sum, sum of squares) [3, P, minibatches]
            return x if x.dtype == torch.float64 and x.shape[0] == 3 else original(self, x)

        Ranks.sum_ = local_moments
    elif mutant == "per-rank-observation-statistics":
        Ranks.moments = lambda self, mean, var, count: (mean, var, count)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(cfg, world: int, tmp_path, mutant: str | None = None) -> list[list[torch.Tensor]]:
    out = tmp_path / f"rank0-{mutant}.pt"
    mp.start_processes(_rank_main, args=(world, _free_port(), cfg, mutant, str(out)), nprocs=world,
                       start_method="spawn")
    return torch.load(out)


def max_diff(a, b) -> float:
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_are_the_one_process_run(tmp_path, case):
    cfg = _cfg(tmp_path, case)
    one = params_after_updates(cfg, Ranks(0, 1, cfg.num_envs))
    two = run_ranks(cfg, 2, tmp_path)
    for u in range(UPDATES):
        assert max_diff(one[u], two[u]) < 1e-5, (u + 1, max_diff(one[u], two[u]))
    # and the run moved: the comparison can fail
    assert max_diff(one[0], one[-1]) > 1e-4  # (Adam moves a weight by up to lr per step: 2.5e-4 for Pong)


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
@pytest.mark.parametrize("mutant,case", [
    ("no-gradient-all-reduce", "cartpole"),
    ("per-rank-advantage-normalization", "cartpole"),
    ("same-env-seeds", "cartpole"),
    ("per-rank-observation-statistics", "pendulum-normalized"),
])
def test_mutants_are_caught(tmp_path, mutant, case):
    cfg = _cfg(tmp_path, case)
    one = params_after_updates(cfg, Ranks(0, 1, cfg.num_envs))
    two = run_ranks(cfg, 2, tmp_path, mutant)
    assert max(max_diff(one[u], two[u]) for u in range(UPDATES)) > 1e-4, mutant


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
@pytest.mark.parametrize("learn,case", [
    ("replicated", "pendulum-normalized"), ("replicated", "cartpolenovel-lstm"), ("replicated", "cartpole-pack"),
    ("lead", "pendulum-normalized"), ("lead", "cartpole-pack"),
])
def test_a_replicated_or_lead_learner_over_two_ranks_is_the_one_process_run(tmp_path, learn, case):
    """--rank-learn replicated: the update's batch all-gathered once, every rank takes every minibatch step itself
    (no collective per minibatch); lead: rank 0 alone takes them and sends its weights. The same weights as one
    process after each update, on every rank, for a normalized Box run (a KL-adaptive member in the pack), an LSTM's
    whole-trajectory minibatches and a pack (member-major rows)."""
    if case == "cartpole-pack":
        cfg = _pack(tmp_path, "cartpole", rank_learn=learn)
    else:
        cfg = _cfg(tmp_path, case, rank_learn=learn)
    first = cfg[0] if isinstance(cfg, list) else cfg
    one = params_after_updates(cfg, Ranks(0, 1, first.num_envs))
    two = run_ranks(cfg, 2, tmp_path)
    for u in range(UPDATES):
        assert max_diff(one[u], two[u]) < 1e-5, (u + 1, max_diff(one[u], two[u]))
    assert max_diff(one[0], one[-1]) > 1e-4


def test_rank_learn_auto_leads_on_one_cpu_node_and_replicates_latency_bound_steps_elsewhere():
    from ppo_pipeline.algo.ranks import REPLICATE_BELOW_ROWS, rank_learning

    cfg = tiny(config.mujoco, minibatch_size=64)
    two = Ranks(0, 2, 8)
    assert rank_learning(cfg, two, pixels=False) == "lead"  # CPU ranks of one node: the one-process update
    assert rank_learning(cfg, two, pixels=True) == "lead"
    assert rank_learning(cfg, Ranks(0, 1, 8), pixels=False) == "one"  # one process
    two_nodes = helpers.replace(cfg, nodes=2)
    assert rank_learning(two_nodes, two, pixels=False) == "replicated"  # Table 3: 32 rows per rank per step
    assert rank_learning(two_nodes, two, pixels=True) == "sharded"  # a CNN's step is compute worth sharing
    wide = helpers.replace(two_nodes, minibatch_size=2 * REPLICATE_BELOW_ROWS)
    assert rank_learning(wide, two, pixels=False) == "sharded"  # Table 4's 4096 rows: shared
    for learn in ("sharded", "replicated", "lead"):
        assert rank_learning(helpers.replace(cfg, rank_learn=learn), two, pixels=False) == learn


def _pack(tmp_path, case, rank_learn="sharded"):
    """A pack of two members of ``case`` (seeds 0 and 1; of Pendulum, the second a KL-adaptive one)."""
    cfg = _cfg(tmp_path, case, rank_learn)
    other = {"objective": "kl_adaptive"} if case == "pendulum-normalized" else {}
    return [cfg, helpers.replace(cfg, seed=1, **other)]


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
@pytest.mark.parametrize("case", ["cartpole", "pendulum-normalized"])
def test_a_pack_over_two_ranks_is_the_one_process_pack(tmp_path, case):
    """Each rank steps its share of every member's envs; per member: the minibatch's advantage moments, the
    observation and reward statistics, the mean KL over all ranks; the pack's gradients summed over the ranks."""
    pack = _pack(tmp_path, case)
    one = params_after_updates(pack, Ranks(0, 1, pack[0].num_envs))
    two = run_ranks(pack, 2, tmp_path)
    for u in range(UPDATES):
        assert max_diff(one[u], two[u]) < 1e-5, (u + 1, max_diff(one[u], two[u]))
    assert max_diff(one[0], one[-1]) > 1e-4


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
@pytest.mark.parametrize("mutant", ["per-rank-advantage-normalization", "same-env-seeds"])
def test_a_pack_over_ranks_mutant_is_caught(tmp_path, mutant):
    pack = _pack(tmp_path, "cartpole")
    one = params_after_updates(pack, Ranks(0, 1, pack[0].num_envs))
    two = run_ranks(pack, 2, tmp_path, mutant)
    assert max(max_diff(one[u], two[u]) for u in range(UPDATES)) > 1e-4, mutant


def test_a_draw_for_some_rows_is_the_draw_for_all_rows():
    """Row i of a categorical / Bernoulli draw depends on the generator's state and row i alone (what lets a rank
    draw its envs' actions as the one-process run does: RowShare.pad)."""
    E, K = 8, 5
    probs = torch.softmax(torch.randn(E, K), -1)
    full = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(3)).squeeze(1)
    for start, stop in [(0, 4), (4, 8), (2, 6)]:
        share = RowShare(start, stop, E)
        padded = share.pad(probs[start:stop])
        part = torch.multinomial(padded, 1, generator=torch.Generator().manual_seed(3)).squeeze(1)
        assert torch.equal(share.take(part), full[start:stop])


def test_ranks_must_divide_the_envs():
    with pytest.raises(ValueError, match="do not divide num_envs=6"):
        Ranks(0, 4, 6)
    assert ranks_module.ONE.world == 1 and not ranks_module.ONE.many


# --------------------------------------------------------------------------------------------------------------
# The front door: `--nproc-per-node N` starts N ranks of one run here
# --------------------------------------------------------------------------------------------------------------
def _recipe(tmp_path, *args, timeout=600):
    import subprocess
    import sys

    from helpers import ROOT, subprocess_env

    base = [] if "--resume" in args else ["--num-envs", "8", "--eval-episodes", "2", "--checkpoint-every", "5"]
    return subprocess.run([sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--no-progress", *base, *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def _metrics(run_dir, columns=8):
    return [",".join(line.split(",")[:columns]) for line in (run_dir / "metrics.csv").read_text().splitlines()]


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_two_ranks_from_the_recipe_are_the_one_process_run_and_resume(tmp_path):
    """One run directory written by rank 0: the same episodes and metrics as one process for the first updates
    (after them, float differences may flip an action); a Ctrl-C stops both ranks at one update (one checkpoint),
    and resuming with 2 ranks, or with 1, ends as the uninterrupted 2-rank run."""
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT, subprocess_env

    steps = ["--total-steps", "10240"]
    one = _recipe(tmp_path, *steps, "--run-dir", "one")
    two = _recipe(tmp_path, *steps, "--run-dir", "two", "--nproc-per-node", "2")
    assert one.returncode == 0 and two.returncode == 0, two.stderr[-3000:]
    d1, d2 = (next((tmp_path / n).iterdir()) for n in ("one", "two"))
    assert _metrics(d1)[:11] == _metrics(d2)[:11]  # header + 10 updates: rows, episodes, returns
    assert sorted(p.name for p in d2.iterdir()) == sorted(p.name for p in d1.iterdir())
    # Ctrl-C: both ranks stop after the same update, one checkpoint; resume with 2 ranks, and with 1
    cmd = [sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--num-envs", "8", "--no-progress",
           "--eval-episodes", "2", "--checkpoint-every", "5", *steps, "--run-dir", "cut", "--nproc-per-node", "2"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=subprocess_env())
    run_dir = tmp_path / "cut" / d1.name
    deadline = time.monotonic() + 300
    while not (run_dir / "metrics.csv").exists() or len((run_dir / "metrics.csv").read_text().splitlines()) < 4:
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=300)
    assert p.returncode == 130, err[-3000:]
    assert err.count("interrupted (Ctrl-C)") == 1, err  # rank 0 speaks for the run
    import shutil

    shutil.copytree(tmp_path / "cut", tmp_path / "cut1")
    again = _recipe(tmp_path, "--resume", str(run_dir), "--nproc-per-node", "2")
    alone = _recipe(tmp_path, "--resume", str(tmp_path / "cut1" / d1.name), "--nproc-per-node", "1")
    assert again.returncode == 0 and alone.returncode == 0, again.stderr[-2000:] + alone.stderr[-2000:]
    assert _metrics(run_dir, 19) == _metrics(d2, 19)  # exact: the uninterrupted 2-rank run, row for row
    assert (run_dir / "episodes.csv").read_text() == (d2 / "episodes.csv").read_text()
    assert "resuming a run of 2 rank(s) with 1" in alone.stdout  # and it says it is not bit-exact
    assert "resuming a run of" not in again.stdout
    final1 = _metrics(tmp_path / "cut1" / d1.name)[-1]
    assert final1.split(",")[:2] == _metrics(d2)[-1].split(",")[:2]  # 1 process continues to the budget


@pytest.mark.parametrize("argv,needle", [
    (["--num-envs", "6", "--nproc-per-node", "4"], "nproc_per_node=4 does not divide num_envs=6"),
    (["--num-envs", "2", "--nproc-per-node", "4"], "more ranks than envs"),
    (["--nproc-per-node", "2", "--dist-backend", "nccl", "--device", "cpu"], "dist_backend=nccl needs CUDA"),
    (["--nproc-per-node", "0"], "nproc_per_node=0 must be >= 1"),
], ids=["divide", "more-ranks", "nccl-cpu", "zero"])
def test_bad_rank_input_is_one_line(tmp_path, capsys, argv, needle):
    from ppo_pipeline import launch

    with pytest.raises(SystemExit) as e:
        launch.main(config.classic, "t", [*argv, "--run-dir", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_a_rank_that_dies_stops_the_run_with_one_line(tmp_path):
    """kill -9 of rank 1 mid-run: the launcher names it in one `error:` line, the other rank is stopped (no
    hang), exit 1; the newest checkpoint stays valid."""
    import signal
    import subprocess
    import sys
    import time

    from helpers import ROOT, subprocess_env

    cmd = [sys.executable, str(ROOT / "recipes" / "classic_control.py"), "--num-envs", "8", "--no-progress",
           "--eval-episodes", "0", "--checkpoint-every", "2", "--total-steps", "400000", "--run-dir", "r",
           "--nproc-per-node", "2"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=subprocess_env())
    run_dir = tmp_path / "r" / "CartPole-v1__clip__s0"
    deadline = time.monotonic() + 300
    while not (run_dir / "metrics.csv").exists() or len((run_dir / "metrics.csv").read_text().splitlines()) < 4:
        assert time.monotonic() < deadline and p.poll() is None, p.communicate()
        time.sleep(0.2)
    rank1 = [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and _is_rank(d, 1, p.pid)]
    assert len(rank1) == 1, rank1
    os.kill(rank1[0], signal.SIGKILL)
    t0 = time.monotonic()
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1, err[-3000:]
    assert "error: rank 1 of 2 exited with code -9" in err, err[-3000:]
    assert time.monotonic() - t0 < 60
    from ppo_pipeline.run import checkpoint as ckpt

    newest = ckpt.latest(run_dir)
    assert newest is not None and ckpt.load(newest)["update"] >= 2  # the newest checkpoint stays valid


def _is_rank(proc: Path, rank: int, parent: int) -> bool:
    try:
        status = (proc / "status").read_text()
        env = (proc / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
    ppid = next((int(x.split()[1]) for x in status.splitlines() if x.startswith("PPid:")), -1)
    return ppid == parent and f"RANK={rank}".encode() in env


def _stats_rank_main(rank: int, world: int, port: int, cfg, out_dir: str) -> None:
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        ranks = Ranks(rank, world, cfg.num_envs, stats_every="update")
        torch.set_num_threads(1)
        checkpoint.seed_everything(cfg.seed)
        envs = make_vector_env(cfg, ranks.envs.stop - ranks.envs.start)
        ppo = PPO(cfg, envs, torch.device("cpu"), ranks=ranks)
        ppo.collector.reset(env_seeds(cfg.seed, cfg.num_envs)[ranks.envs.start : ranks.envs.stop])
        out = []
        for u in range(1, UPDATES + 1):
            ppo.update(u)
            out.append({"params": [p.detach().clone() for p in ppo.params], "obs": ppo.obs_norm.state_dict(),
                        "reward": {k: v for k, v in ppo.reward_scaler.state_dict().items() if k != "ret"}})
        torch.save(out, f"{out_dir}/rank{rank}.pt")
        envs.close()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_statistics_combined_once_per_update_keep_the_ranks_alike(tmp_path):
    """`--rank-stats update` (baselines' way, not exact): the ranks do not combine their statistics per step, yet
    after each update every rank holds the same statistics and weights, and the statistics are those of all envs
    (the one-process run's count)."""
    import numpy as np

    cfg = _cfg(tmp_path, "pendulum-normalized")
    mp.start_processes(_stats_rank_main, args=(2, _free_port(), cfg, str(tmp_path)), nprocs=2, start_method="spawn")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1))
    one = params_after_updates(cfg, Ranks(0, 1, cfg.num_envs))
    for u in range(UPDATES):
        assert max_diff(r0[u]["params"], r1[u]["params"]) == 0.0
        for key in ("mean", "var", "count"):
            assert np.array_equal(r0[u]["obs"][key], r1[u]["obs"][key]) and np.array_equal(
                r0[u]["reward"][key], r1[u]["reward"][key])
    expected_count = 1e-4 + cfg.num_envs * (1 + cfg.num_steps * UPDATES)  # the reset's observations, then each step's
    assert abs(r0[-1]["obs"]["count"] - expected_count) < 1e-6, r0[-1]["obs"]["count"]
    assert 0 < max_diff(one[-1], r0[-1]["params"]) < 0.05  # close to the exact run, not equal


# --------------------------------------------------------------------------------------------------------------
# A pack over ranks through the trainer: each member's directory as the one-process pack writes it
# --------------------------------------------------------------------------------------------------------------
def _pack_members(tmp_path, where: str) -> list:
    cfg = _cfg(tmp_path, "cartpole")
    cfg = helpers.replace(cfg, run_dir=str(tmp_path / where), nproc_per_node=2, total_steps=4 * 32 * 4,
                          checkpoint_every=1)
    return [cfg, helpers.replace(cfg, seed=1)]


def _train_pack(members, pack_dir, stop_after=None, resume=False) -> None:
    from ppo_pipeline.run import ranked
    from ppo_pipeline.run.trainer import Trainer
    from ppo_pipeline.run.training_state import pack_resume_points

    points = pack_resume_points(pack_dir, members) if resume else None
    assert points or not resume, "no checkpoint marked to resume from"  # (each rank reads pack.json)
    try:
        Trainer(members, pack_dir=pack_dir).train(points[0] if points else None, stop_after=stop_after)
    finally:
        ranked.leave()


def _pack_rank_main(rank: int, world: int, port: int, members, pack_dir, stop_after, resume) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world))
    _train_pack(members, pack_dir, stop_after, resume)


def _pack_over_ranks(members, pack_dir, stop_after=None, resume=False) -> None:
    mp.start_processes(_pack_rank_main, args=(2, _free_port(), members, pack_dir, stop_after, resume), nprocs=2,
                       start_method="spawn")


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_a_pack_over_ranks_trainer_writes_the_one_process_packs_members_and_resumes(tmp_path):
    """Each member's metrics (first columns) and episodes (every rank's, merged) as the one-process pack writes
    them; stopped after 2 updates and resumed over 2 ranks (each rank its rows of every member's checkpoint: the
    observations, the envs' snapshots), it ends as the uninterrupted one."""
    one, two, cut = (_pack_members(tmp_path, w) for w in ("one", "two", "cut"))
    _train_pack(one, tmp_path / "one" / "pack")
    _pack_over_ranks(two, tmp_path / "two" / "pack")
    _pack_over_ranks(cut, tmp_path / "cut" / "pack", stop_after=2)
    assert len(_metrics(cut[0].run_path())) == 3  # header + 2 updates
    _pack_over_ranks(cut, tmp_path / "cut" / "pack", resume=True)
    for m1, m2, m3 in zip(one, two, cut):
        assert _metrics(m1.run_path(), 7) == _metrics(m2.run_path(), 7) == _metrics(m3.run_path(), 7)
        assert len(_metrics(m1.run_path())) == 5
        episodes = (m1.run_path() / "episodes.csv").read_text()
        assert episodes.count("\n") > 5
        assert episodes == (m2.run_path() / "episodes.csv").read_text() == (m3.run_path() / "episodes.csv").read_text()
