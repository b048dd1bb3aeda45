"""Env seeds (ppo_pipeline.envs.seeds): any run seed in [0, 2^32); disjoint across runs, between training
and evaluation, and after a resume; the streams of seeds 0..10000 as they always were."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ppo_pipeline import config
from ppo_pipeline.envs import seeds
from ppo_pipeline.errors import ConfigError

RUN_SEED = st.integers(0, 2**32 - 1)
# the edges of the small/large rule as well as anywhere in the range
EDGY_SEED = st.one_of(RUN_SEED, st.sampled_from([0, 1, 42, seeds.MAX_SEED, seeds.MAX_SEED + 1, 12345,
                                                  2**31 - 1, 2**32 - 1]))


def block(seed: int, evaluation: bool) -> range:
    """Every seed that run ``seed`` can give its training (or evaluation) envs: EVAL_OFFSET of them."""
    ids = seeds.env_seeds(seed, 3, evaluation=evaluation)
    start = ids[0]
    assert ids == list(range(start, start + 3))                           # consecutive
    return range(start, start + seeds.EVAL_OFFSET)


def test_env_seeds_never_overlap_across_seeds():
    seen: set[int] = set()
    for seed in range(20):
        ids = seeds.env_seeds(seed, 64) + seeds.env_seeds(seed, 16, evaluation=True)
        assert not seen & set(ids)
        seen |= set(ids)


def test_small_seeds_keep_their_streams():
    """Seeds 0..10000 give what they always gave (results/ was made with these)."""
    assert seeds.env_seeds(0, 3) == [0, 1, 2]
    assert seeds.env_seeds(1, 2, evaluation=True) == [150_000, 150_001]
    assert seeds.env_seeds(42, 2) == [4_200_000, 4_200_001]
    assert seeds.env_seeds(10_000, 1, evaluation=True) == [1_000_050_000]
    assert seeds.resume_seeds(3, 10, 2) == seeds.resume_seeds(3, 10, 2)
    assert seeds.resume_seeds(0, 1, 2) == [1359927893, 1640841758]
    assert seeds.resume_seeds(42, 50, 1) == [1880979119]


@given(st.integers(0, seeds.MAX_SEED), st.integers(1, 64))
def test_small_seeds_follow_the_old_rule(seed, n):
    assert seeds.env_seeds(seed, n) == [seed * 100_000 + i for i in range(n)]
    assert seeds.env_seeds(seed, n, evaluation=True) == [seed * 100_000 + 50_000 + i for i in range(n)]


def test_large_seeds_have_their_own_block():
    assert seeds.env_seeds(12345, 2) == [2**31 + 1_234_500_000, 2**31 + 1_234_500_001]
    assert seeds.env_seeds(2**32 - 1, 1, evaluation=True) == [2**31 + (2**32 - 1) * 100_000 + 50_000]


@given(EDGY_SEED, EDGY_SEED, st.booleans(), st.booleans())
def test_two_run_seeds_never_share_an_env_seed(a, b, eval_a, eval_b):
    """Any two runs (or one run's training and evaluation): their blocks of EVAL_OFFSET seeds are disjoint."""
    if (a, eval_a) == (b, eval_b):
        return
    x, y = block(a, eval_a), block(b, eval_b)
    assert x.stop <= y.start or y.stop <= x.start
    assert not set(seeds.env_seeds(a, 16, evaluation=eval_a)) & set(seeds.env_seeds(b, 16, evaluation=eval_b))


@given(EDGY_SEED, st.integers(0, 10**6), EDGY_SEED, st.booleans())
def test_resume_seeds_never_meet_any_runs_env_seeds(seed, update, other, evaluation):
    got = seeds.resume_seeds(seed, update, 8)
    assert all(seeds.RESUME_BASE <= x < 2**31 for x in got)                # envpool's int32 included
    assert not set(got) & set(block(other, evaluation))


def test_resume_seeds_never_meet_a_runs_training_or_evaluation_seeds():
    """A resumed run's restarted envs: never a training or evaluation seed of any run (the old rule
    ``seed*100000 + i + update*1000`` gave run s's eval seeds after update 50, run s+1's after 100)."""
    top = max(seeds.env_seeds(seeds.MAX_SEED, seeds.EVAL_OFFSET, evaluation=True))
    assert top < seeds.FOLD_BASE < seeds.RESUME_BASE
    assert min(seeds.env_seeds(seeds.MAX_SEED + 1, 1)) >= 2**31
    seen: set[int] = set()
    for seed in (0, 1, 7, seeds.MAX_SEED, 12345, 2**32 - 1):
        for update in (1, 50, 100, 101, 9766):
            got = seeds.resume_seeds(seed, update, 8)
            assert all(seeds.RESUME_BASE <= x < 2**31 for x in got)      # envpool's int32 included
            assert len(set(got)) == 8 and not seen & set(got)           # apart across seeds and updates
            seen |= set(got)


@given(EDGY_SEED, st.booleans())
def test_int32_backends_get_seeds_apart_from_small_and_resume_seeds(seed, evaluation):
    """envpool and dm_control take int32/uint32 seeds: a large seed's are folded between the small seeds'
    blocks and the resume seeds; the others pass unchanged."""
    ids = seeds.env_seeds(seed, 4, evaluation=evaluation)
    folded = seeds.fit_int32(ids)
    assert folded == seeds.fit_int32(ids)                                 # derived, not drawn
    assert all(0 <= x <= 2**31 - 1 for x in folded)
    if seed <= seeds.MAX_SEED:
        assert folded == ids
    else:
        assert all(seeds.FOLD_BASE <= x < seeds.RESUME_BASE for x in folded)


@pytest.mark.filterwarnings("ignore:.*precision lowered:UserWarning")   # envpool's float64 bounds
def test_envpool_runs_a_large_seed():
    pytest.importorskip("envpool")
    from ppo_pipeline.envs import envpool as envpool_backend

    cfg = config.classic(seed=2**32 - 1)
    envs = envpool_backend.make_vector_env(cfg, 2)
    try:
        obs, _ = envs.reset(seed=seeds.env_seeds(cfg.seed, 2))
        assert obs.shape == (2, 4) and envs.seeds == seeds.fit_int32(seeds.env_seeds(cfg.seed, 2))
    finally:
        envs.close()


def test_seed_bounds_are_one_line_errors():
    for args, needle in (((-1, 8, 10), r"seed=-1 must be in \[0, 4294967295\]"),
                         ((2**32, 8, 10), r"seed=4294967296 must be in \[0, 4294967295\]"),
                         ((0, seeds.EVAL_OFFSET + 1, 1), "num_envs=")):
        with pytest.raises(ConfigError, match=needle):
            seeds.check(*args)
    for seed in (0, 12345, 2**32 - 1):
        seeds.check(seed, 8, 10)


# ------------------------------------------------------------------------------------------------------
# Through the recipes' command line
# ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [12345, 42, 2**31 - 1, 2**32 - 1])
def test_recipe_command_line_takes_any_seed(tmp_path, seed):
    """What users type (CleanRL, SB3 and gymnasium take any of these) passes the recipe's checks."""
    from ppo_pipeline.cli import build_parser, config_from_args
    from ppo_pipeline.launch import new_run

    parser = build_parser(config.classic, "t")
    cfg = new_run(config_from_args(parser.parse_args(["--seed", str(seed), "--run-dir", str(tmp_path)])))
    assert cfg.seed == seed and cfg.run_path().name == f"CartPole-v1__clip__s{seed}"


@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_recipe_command_line_refuses_seeds_out_of_range(capsys, tmp_path, seed):
    from ppo_pipeline import launch

    with pytest.raises(SystemExit) as exc:
        launch.main(config.classic, "t", ["--seed", seed, "--run-dir", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: seed={seed} must be in [0, 4294967295] (0 to 2**32 - 1)"]


@pytest.mark.parametrize("seed", [12345, 2**32 - 1])
def test_a_run_with_a_large_seed_trains_and_evaluates(tmp_path, capsys, seed):
    """A tiny CartPole run: its training and evaluation envs, global and per-member generators seeded."""
    import json

    from ppo_pipeline import launch

    assert launch.main(config.classic, "t", ["--seed", str(seed), "--total-steps", "256", "--eval-episodes", "2",
                                             "--eval-max-steps", "20", "--run-dir", str(tmp_path), "--no-progress",
                                             "--no-tensorboard"]) == 0
    run = tmp_path / f"CartPole-v1__clip__s{seed}"
    assert json.loads((run / "config.json").read_text())["seed"] == seed
    assert "last-100 training return" in capsys.readouterr().out.splitlines()[-1]


def test_dm_control_runs_a_large_seed():
    """dm_control seeds a uint32 RandomState: a large run seed's env seed reaches it folded."""
    import numpy as np

    pytest.importorskip("dm_control")
    from ppo_pipeline.envs import make_vector_env

    cfg = config.mujoco(env_id="dmc:cheetah-run", num_envs=1, seed=2**32 - 1)
    envs = make_vector_env(cfg, 1)
    try:
        first, _ = envs.reset(seed=seeds.env_seeds(cfg.seed, 1))
        again, _ = envs.reset(seed=seeds.env_seeds(cfg.seed, 1))
        np.testing.assert_array_equal(first, again)
    finally:
        envs.close()
