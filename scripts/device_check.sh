#!/usr/bin/env bash
# The CUDA path, on the machine the device tool lends (one H200): one prepared script of at most 8 minutes.
#
#   here:        bash scripts/device_wheels.sh
#   the device:  run(command="bash scripts/device_check.sh", carry=[".whl"], timeout_s=540)
#
# 1. the tests that take a device, on CUDA (tests/test_device.py: a run of an MLP, of a normalized MLP and of the
#    Nature CNN, a pack, 2 nccl ranks sharing the GPU vs one process; tests/test_ranks.py's gloo cases beside);
# 2. the solo bench rows on CUDA (CartPole, Pong on gymnasium's ALE) and the pack bench (CartPole, P = 8);
# 3. one run as 1 process vs 2 nccl ranks (Pong, CNN).
# Everything it prints goes to $OUT/device-check.log; the figures to $OUT/*.json and results/bench/ (commit those).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device-check}
mkdir -p "$OUT" results/bench
exec > >(tee "$OUT/device-check.log") 2>&1
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD"
day=$(date +%F)
nvidia-smi -L || true
python3 -c "import torch, torchrl, gymnasium; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'torchrl', torchrl.__version__)" || exit 1
step() { echo; echo "== $1 ($(date +%T))"; }

step "1. tests that take a device"
timeout 200 python3 -m pytest -q -p no:cacheprovider -x tests/test_device.py tests/test_ranks.py -k "cuda or nccl or cartpole" || echo "TESTS FAILED rc=$?"

step "2. solo and pack bench rows on CUDA"
timeout 120 python3 -m ppo_pipeline.bench --envs cartpole,pong --steps cartpole=20480,pong=8192 \
  --ours "--device cuda --env-backend gymnasium" --json "$OUT/bench-cuda.json" || echo "BENCH FAILED rc=$?"
timeout 90 python3 -m ppo_pipeline.bench --pack 8 --envs cartpole --pack-updates 3 --json "$OUT/pack-cuda.json" \
  || echo "PACK BENCH FAILED rc=$?"

step "3. 1 vs 2 nccl ranks on the one GPU"
timeout 120 python3 -m ppo_pipeline.bench --ranks 1,2 --envs pong --steps pong=4096 \
  --ours "--device cuda --dist-backend nccl --env-backend gymnasium" --json "$OUT/ranks-cuda.json" \
  || echo "RANKS BENCH FAILED rc=$?"

for f in bench pack ranks; do
  [ -f "$OUT/$f-cuda.json" ] && cp "$OUT/$f-cuda.json" "results/bench/$f-$day-cuda.json"
done
echo; echo "done ($(date +%T)); figures in \$OUT and results/bench/*-$day-cuda.json"
