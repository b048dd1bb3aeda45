#!/usr/bin/env bash
# Install the project and run its whole test suite (the README's test command; .ci/run calls it).
#
#   bash scripts/test.sh [pytest args]
#
# torch is installed first and pinned: a loose torch spec pulls multi-GB CUDA wheels.
# Two tests at a time (pytest-xdist, PPO_TEST_WORKERS=2; 0 runs them one by one in this process): the tests
# marked `alone` (ranks) run with nothing beside them (tests/conftest.py).
# The SLURM tests need the local single-node cluster (slurm/local_cluster.sh); it is started here
# and stopped on exit by the pids the script recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e ".[test]"
SLURM_STARTED=0
if [[ ${PPO_TEST_SLURM:-1} == 1 && -x slurm/local_cluster.sh ]]; then
  bash slurm/local_cluster.sh start
  SLURM_STARTED=1
fi
cleanup() { [[ $SLURM_STARTED == 1 ]] && bash slurm/local_cluster.sh stop || true; }
trap cleanup EXIT
set +e
"$PY" -m pytest -q -n "${PPO_TEST_WORKERS:-2}" --dist worksteal "$@"
rc=$?
set -e
if [[ $rc == 5 ]]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit $rc
