"""The per-minibatch bench (``python -m ppo_pipeline.bench --minibatch``): its plain-torch step computes the run's
loss (else its figures compare two different computations)."""

from ppo_pipeline.tools.bench import WORKLOADS
from ppo_pipeline.tools.bench_minibatch import minibatch_comparison


def test_plain_step_is_the_runs_loss_on_hopper():
    """Hopper-v5 (Gaussian head, no value clipping: Table 3) at the bench's short budget: eager, and the plain
    step's Eq. 9 total equals torchrl's loss on the same minibatch and weights. (CartPole's, categorical with
    CleanRL's value clipping of 0.2, is checked inside the command itself: ``test_bench_minibatch_as_printed``.)"""
    (row,) = minibatch_comparison([WORKLOADS["hopper"]], rounds=1, steps={"hopper": 61_440})
    assert not row["compiled"] and row["updates"] == 30 and row["minibatches_per_update"] == 320, row
    assert abs(row["first_loss"]["run"] - row["first_loss"]["plain"]) <= 1e-5 * abs(row["first_loss"]["run"]), row
    assert row["run_us"] > 0 and row["plain_us"] > 0 and len(row["run_rounds_us"]) == 1, row
