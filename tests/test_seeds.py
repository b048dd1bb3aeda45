"""Env seeds (ppo_pipeline.envs.seeds): disjoint across runs, between training and evaluation, and after
a resume."""

from __future__ import annotations

import pytest

from ppo_pipeline.envs import seeds


def test_env_seeds_never_overlap_across_seeds():
    seen: set[int] = set()
    for seed in range(20):
        ids = seeds.env_seeds(seed, 64) + seeds.env_seeds(seed, 16, evaluation=True)
        assert not seen & set(ids)
        seen |= set(ids)



def test_resume_seeds_never_meet_a_runs_training_or_evaluation_seeds():
    """A resumed run's restarted envs: never a training or evaluation seed of any run (the old rule
    ``seed*100000 + i + update*1000`` gave run s's eval seeds after update 50, run s+1's after 100)."""
    top = max(seeds.env_seeds(seeds.MAX_SEED, seeds.EVAL_OFFSET, evaluation=True))
    assert top < seeds.RESUME_BASE
    seen: set[int] = set()
    for seed in (0, 1, 7, seeds.MAX_SEED):
        for update in (1, 50, 100, 101, 9766):
            got = seeds.resume_seeds(seed, update, 8)
            assert all(seeds.RESUME_BASE <= x < 2**31 for x in got)      # envpool's int32 included
            assert len(set(got)) == 8 and not seen & set(got)           # apart across seeds and updates
            seen |= set(got)
    assert seeds.resume_seeds(3, 10, 4) == seeds.resume_seeds(3, 10, 4)  # derived, not drawn



def test_seed_bounds_are_one_line_errors():
    from ppo_pipeline.errors import ConfigError

    for args, needle in (((seeds.MAX_SEED + 1, 8, 10), "seed=10001"), ((0, seeds.EVAL_OFFSET + 1, 1), "num_envs=")):
        with pytest.raises(ConfigError, match=needle):
            seeds.check(*args)
