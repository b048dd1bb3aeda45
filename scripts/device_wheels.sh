#!/usr/bin/env bash
# The wheels the GPU machine lacks, for scripts/device_check.sh, into .whl/ (ignored by git; carried by the device
# tool: run(..., carry=[".whl"])). That machine has Python 3.12 with torch (2.11 when last seen), no network, and a
# 64 MiB limit on what travels: the pure-Python/cp312 packages our CUDA path needs, not envpool, dm-control or
# imageio-ffmpeg (the check uses gymnasium's ALE and skips what needs those).
#
#   bash scripts/device_wheels.sh          # here, once per session that is lent a GPU
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
for spec in torchrl==0.14.1 tensordict==0.14.0 gymnasium==1.4.0 farama-notifications==0.0.6 ale-py==0.12.1 \
            submitit==1.5.4 mujoco==3.17.0 glfw==2.11.0 pyopengl==3.1.10; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl "$spec"
done
du -sh .whl
