#!/usr/bin/env bash
# How results/ was made (2026-11-21, the 2-core reference CPU, through the local SLURM cluster).
# Each sweep is one command; the report tool turns the sweep directories into results/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash slurm/local_cluster.sh start
# All of Table 1 at this machine's scale (2026-11-22): the 11 rows x 7 tasks x seed 0, final evaluation only
# (5 episodes), about two hours of the local cluster in all: HalfCheetah and Hopper at 200,704 steps per run (98
# batches of 2048, 20% of the paper's 1M), the other five tasks at 98,304 (48 batches, 10%), as the time allowed.
python recipes/mujoco.py --experiment table1 --env-id HalfCheetah-v5,Hopper-v5 --seeds 0 --total-steps 200704 \
    --eval-every 0 --eval-episodes 5 --launcher slurm --cluster local --sweep-dir sweeps/table1-all-a
python recipes/mujoco.py --experiment table1 --env-id InvertedDoublePendulum-v5,InvertedPendulum-v5,Reacher-v5,Swimmer-v5,Walker2d-v5 \
    --seeds 0 --total-steps 98304 --eval-every 0 --eval-episodes 5 --launcher slurm --cluster local \
    --sweep-dir sweeps/table1-all-b
for d in sweeps/table1-all-a sweeps/table1-all-b; do python -m ppo_pipeline.sweep status "$d" --wait 10800; done
python -m ppo_pipeline.report sweeps/table1-all-a sweeps/table1-all-b --out results/table1-all
# (2026-11-21) Table 1 comparison at this machine's scale: 2 MuJoCo tasks x 4 objectives x 3 seeds, 200,704 steps each
# (98 batches of 2048; the paper ran 1M). Defaults = Table 3 preset: clip eps=0.2, d_targ=0.01, beta=1.
python recipes/mujoco.py --launcher slurm --cluster local --seeds 0-2 --env Hopper-v5,HalfCheetah-v5 \
    --objective none,clip,kl_adaptive,kl_fixed --total-steps 200704 --sweep-dir sweeps/table1
# CartPole-v1, classic preset (100k steps), 3 seeds
python recipes/classic_control.py --launcher slurm --cluster local --seeds 0-2 --sweep-dir sweeps/cartpole
# A short Pong curve: Table 5 preset, 196,608 agent steps (786k frames, 2% of the paper's 40M), 1 seed
python recipes/atari.py --launcher slurm --cluster local --seeds 0 --total-steps 196608 --eval-episodes 3 \
    --sweep-dir sweeps/pong
for d in sweeps/table1 sweeps/cartpole sweeps/pong; do python -m ppo_pipeline.sweep status "$d" --wait 7200; done
python -m ppo_pipeline.report sweeps/table1 --out results/table1              # Table 1: MuJoCo only
python -m ppo_pipeline.report sweeps/cartpole sweeps/pong --out results/curves  # CartPole and Pong curves
# keep the per-run summaries (not checkpoints) next to the report
for s in sweeps/*/runs/*/summary.json; do
  run=$(basename "$(dirname "$s")"); mkdir -p "results/runs/$run"; cp "$s" "results/runs/$run/"
done
# (2026-11-22) DMControl cheetah-run through torchrl (issue 11), run by hand in the background, 1 seed:
python recipes/mujoco.py --env-id dmc:cheetah-run --total-steps 300000 --eval-episodes 5 --torch-threads 1 \
    --run-dir runs-dmc --name cheetah-run-300k --no-progress
python -m ppo_pipeline.report runs-dmc --out results/dmc-cheetah-run --random-episodes 0
# (2026-11-22) Pong, 1.5M agent steps on the fast path (issue 8), run by hand in the background, 1 seed:
python recipes/atari.py --total-steps 1500000 --run-dir runs-pong --name pong-1.5M --no-progress
python -m ppo_pipeline.report runs-pong --out results/pong-1.5M --random-episodes 0
# (2026-11-30) A POMDP, LSTM vs MLP (issue 20): CartPole without velocities, classic preset + entropy 0.01, 3 seeds each
python recipes/classic_control.py --env-id tests.variant_envs:CartPoleNoVel --policy lstm,mlp --entropy-coef 0.01 \
    --seeds 0-2 --eval-episodes 10 --torch-threads 1 --no-progress --sweep-dir ../pomdp
python -m ppo_pipeline.report ../pomdp --out results/pomdp-lstm --random-episodes 0
# (2026-11-30) Table 1 at the paper's full budget (issue 19): 11 rows x 7 tasks x seeds 0-2 x 1M steps, 7 packs of 33
python recipes/mujoco.py --experiment table1 --pack 33 --sweep-dir ../t1full --no-progress
python -m ppo_pipeline.report ../t1full --out results/table1-full --finished-only
# (2026-12-02) Figure 4 (Sec. 6.3, Table 4 preset), 10M steps each (10-20% of the paper's 50M/100M), 1 seed, run by hand
# in the background from a snapshot of 5ef3744, two at a time on one torch thread each, niced (in progress: see
# docs/results.md); resume a stopped one with `python recipes/humanoid.py --resume runs-figure4/<run>`
python recipes/humanoid.py --env-id Humanoid-v5 --num-envs 32 --total-steps 10000000 --run-dir runs-figure4 --torch-threads 1 --no-progress
python recipes/humanoid.py --env-id HumanoidBulletEnv-v0 --num-envs 32 --total-steps 10000000 --run-dir runs-figure4 --torch-threads 1 --no-progress
python recipes/humanoid.py --env-id HumanoidFlagrunBulletEnv-v0 --num-envs 128 --total-steps 10000000 --run-dir runs-figure4 --torch-threads 1 --no-progress
python recipes/humanoid.py --env-id HumanoidFlagrunHarderBulletEnv-v0 --num-envs 128 --total-steps 10000000 --run-dir runs-figure4 --torch-threads 1 --no-progress
python -m ppo_pipeline.report runs-figure4 --out results/figure4 --random-episodes 20
