"""A real sweep on the local SLURM cluster (``slurm/local_cluster.sh start``), no mocks.

2 envs x 2 seeds of CartPole (CartPole-v1, CartPole-v0) at a tiny budget go in as one submitit job
array (at most 2 at once); one job is preempted mid-run (``scancel --signal=USR2`` via submitit's
``job._interrupt()``), checkpoints at the end of its update, is requeued and resumes. Every run must
finish, the preempted one must equal its uninterrupted twin (same final parameters, same
``metrics.csv`` except the wall-clock columns), and ``sweep status`` must report it all. Then
``cancel`` and ``resume`` of a second sweep, and the one-line refusal when the controller is down.

Skipped (with the reason) only when the cluster is not running; CI starts it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ppo_pipeline.run import checkpoint
from ppo_pipeline.run.metrics import TIMING_COLUMNS
from ppo_pipeline.sweeps import sweep

REPO = Path(__file__).resolve().parents[1]
RECIPE = str(REPO / "recipes" / "classic_control.py")
UPDATES = 100
TINY = ["--total-steps", str(128 * UPDATES), "--num-envs", "4", "--num-steps", "32", "--minibatch-size", "64",
        "--epochs", "4", "--eval-every", "0", "--eval-episodes", "2", "--eval-max-steps", "50",
        "--checkpoint-every", "25", "--torch-threads", "1", "--no-tensorboard", "--no-progress"]


def _cluster_up() -> str | None:
    """None when the local cluster takes jobs, else why not."""
    if shutil.which("sinfo") is None or shutil.which("sacct") is None:
        return "SLURM client tools are not installed"
    try:
        p = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer"
    if p.returncode != 0:
        return f"sinfo failed: {p.stderr.strip()[:200]}"
    if not any(s.rstrip("*~#") in ("idle", "mixed", "allocated", "completing") for s in p.stdout.split()):
        return f"no node takes jobs (states: {p.stdout.split()})"
    return None


_WHY = _cluster_up()
pytestmark = [pytest.mark.slurm, pytest.mark.slow,
              pytest.mark.skipif(_WHY is not None, reason=f"local SLURM cluster not running ({_WHY}); "
                                 f"start it with `slurm/local_cluster.sh start`")]


def _py(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=timeout,
                          env=env)


def _metrics(run: Path) -> list[dict]:
    with (run / "metrics.csv").open() as f:
        return [{k: v for k, v in r.items() if k not in TIMING_COLUMNS} for r in csv.DictReader(f)]


def _rows(run: Path) -> int:
    p = run / "metrics.csv"
    return max(len(p.read_text().splitlines()) - 1, 0) if p.is_file() else 0


def _by_run(sdir: Path) -> dict[str, sweep.RunStatus]:
    return {r.run: r for r in sweep.status(sdir)}


def test_sweep_preempt_resume_status(tmp_path):
    t0 = time.time()
    sdir = tmp_path / "sweep"
    p = _py(RECIPE, "--launcher", "slurm", "--cluster", "local", "--env", "CartPole-v1,CartPole-v0",
            "--seeds", "0-1", "--sweep-dir", str(sdir), *TINY)
    assert p.returncode == 0, p.stderr
    assert "submitted 4 run(s) as job array" in p.stdout
    manifest = json.loads((sdir / "manifest.json").read_text())
    assert manifest["launcher"] == "slurm" and manifest["cluster"] == "local"
    names = [r["name"] for r in manifest["runs"]]
    assert names == ["CartPole-v1__clip__s0", "CartPole-v1__clip__s1", "CartPole-v0__clip__s0", "CartPole-v0__clip__s1"]
    ids = [r["job_id"] for r in manifest["runs"]]
    assert len({i.split("_")[0] for i in ids}) == 1, f"not one job array: {ids}"   # one array, tasks _0.._3
    sbatch = next((sdir / "slurm").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --array=0-3%2" in sbatch                                          # the concurrency cap

    # preempt the first run mid-run
    target = sdir / "runs" / names[0]
    end = time.time() + 120
    while _rows(target) < 3:
        assert time.time() < end, f"{names[0]} made no progress: {sweep.format_table(sweep.status(sdir))}"
        time.sleep(0.1)
    assert _rows(target) < UPDATES, "the run finished before it could be preempted: raise UPDATES"
    # Preemption = SIGUSR2 (submitit's signal). Slurm 22.05 refuses to signal an array task by job id
    # while tasks of its array are still pending ("Job can not be altered now"), so signal its step 0,
    # the srun that runs submitit's python, as slurmd would on preemption.
    subprocess.run(["scancel", "--signal=USR2", f"{ids[0]}.0"], check=True, timeout=30)
    t_preempt = time.time() - t0

    # meanwhile, the uninterrupted twin of the preempted run, here
    twin = tmp_path / "twin"
    p = _py(RECIPE, "--env", "CartPole-v1", "--seeds", "0", "--sweep-dir", str(twin), *TINY, timeout=300)
    assert p.returncode == 0, p.stderr

    rows = sweep.wait(sdir, timeout_s=300, poll_s=1.0)
    table = sweep.format_table(rows)
    assert all(r.state == sweep.FINISHED for r in rows), table
    assert all(r.progress == 100.0 and r.updates == UPDATES and r.last_return is not None for r in rows), table
    st = _by_run(sdir)
    assert st[names[0]].restarts >= 1, f"the preempted job was not requeued:\n{table}"
    job_state = json.loads((target / "job.json").read_text())
    assert job_state["resumed_from"] and job_state["state"] == "FINISHED"

    # the preempted run equals its twin
    b = twin / "runs" / names[0]
    ma, mb = _metrics(target), _metrics(b)
    assert [r["update"] for r in ma] == [str(u) for u in range(1, UPDATES + 1)], "duplicate or missing rows"
    assert ma == mb
    sa, sb = checkpoint.load(checkpoint.latest(target)), checkpoint.load(checkpoint.latest(b))
    assert sa["update"] == sb["update"] == UPDATES
    assert all(torch.equal(sa["agent"][k], sb["agent"][k]) for k in sa["agent"])

    # status reports it all, on the command line too
    p = _py("-m", "ppo_pipeline.sweep", "status", str(sdir))
    assert p.returncode == 0, p.stderr
    assert "4/4 runs finished" in p.stdout
    for name, jid in zip(names, ids):
        line = next(x for x in p.stdout.splitlines() if x.startswith(name))
        assert "FINISHED" in line and "100%" in line and jid in line, line
    p = _py("-m", "ppo_pipeline.sweep", "resume", str(sdir))
    assert p.returncode == 0 and "nothing to resume" in p.stdout, p.stdout + p.stderr
    print(f"\npreempted at {t_preempt:.1f}s, sweep done at {time.time() - t0:.1f}s\n{table}")


def test_cancel_then_resume(tmp_path):
    """`sweep cancel` stops a running job; `sweep resume` resubmits just that run, which resumes."""
    sdir = tmp_path / "sweep"
    updates = 8 * UPDATES    # long enough that the cancel (a fresh process) arrives while the run trains
    p = _py(RECIPE, "--launcher", "slurm", "--seeds", "3", "--sweep-dir", str(sdir),
            *TINY[:-6], "--checkpoint-every", "2", *TINY[-4:], "--total-steps", str(128 * updates))
    assert p.returncode == 0, p.stderr
    run = sdir / "runs" / "CartPole-v1__clip__s3"
    end = time.time() + 120
    while _rows(run) < 5:
        assert time.time() < end, "no progress"
        time.sleep(0.1)
    p = _py("-m", "ppo_pipeline.sweep", "cancel", str(sdir))
    assert p.returncode == 0 and "cancelled 1 job(s)" in p.stdout, p.stdout + p.stderr
    end = time.time() + 60
    while (st := sweep.status(sdir)[0]).state in sweep.ACTIVE_STATES or st.state == "UNKNOWN":
        assert time.time() < end, st
        time.sleep(0.5)
    assert st.state == "CANCELLED" and st.progress < 100, st
    old = st.job_id
    p = _py("-m", "ppo_pipeline.sweep", "resume", str(sdir))
    assert p.returncode == 0 and "resubmitted 1 job(s)" in p.stdout, p.stdout + p.stderr
    rows = sweep.wait(sdir, timeout_s=300, poll_s=1.0)
    assert rows[0].state == sweep.FINISHED and rows[0].job_id != old, rows
    assert [r["update"] for r in _metrics(run)] == [str(u) for u in range(1, updates + 1)]
    assert json.loads((run / "job.json").read_text())["resumed_from"]
    manifest = json.loads((sdir / "manifest.json").read_text())
    assert manifest["runs"][0]["job_ids"] == [old, rows[0].job_id] and len(manifest["submissions"]) == 2


def test_pack_job_preempted_requeued_and_exact(tmp_path):
    """--pack on SLURM: one job trains three seeds as one pack; SIGUSR2 (preemption) checkpoints the pack and
    submitit requeues it; it resumes and every member ends exactly where the same pack run here, uninterrupted,
    ends; status shows the runs with their pack."""
    sdir = tmp_path / "sweep"
    p = _py(RECIPE, "--launcher", "slurm", "--seeds", "0-2", "--pack", "3", "--sweep-dir", str(sdir), *TINY)
    assert p.returncode == 0, p.stderr
    assert "submitted 3 run(s) in 1 job(s)" in p.stdout, p.stdout
    manifest = json.loads((sdir / "manifest.json").read_text())
    ids = {r["job_id"] for r in manifest["runs"]}
    assert len(ids) == 1 and len(manifest["packs"]) == 1
    target = sdir / "runs" / "CartPole-v1__clip__s0"
    end = time.time() + 120
    while _rows(target) < 3:
        assert time.time() < end, f"no progress: {sweep.format_table(sweep.status(sdir))}"
        time.sleep(0.1)
    assert _rows(target) < UPDATES, "the pack finished before it could be preempted: raise UPDATES"
    subprocess.run(["scancel", "--signal=USR2", f"{ids.pop()}.0"], check=True, timeout=30)
    twin = tmp_path / "twin"
    p = _py(RECIPE, "--seeds", "0-2", "--pack", "3", "--sweep-dir", str(twin), *TINY, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = sweep.wait(sdir, timeout_s=300, poll_s=1.0)
    table = sweep.format_table(rows)
    assert all(r.state == sweep.FINISHED and r.pack for r in rows) and "1/1 packs finished" in table, table
    assert all(r.restarts >= 1 for r in rows), f"the preempted pack was not requeued:\n{table}"
    for seed in range(3):
        a, b = sdir / "runs" / f"CartPole-v1__clip__s{seed}", twin / "runs" / f"CartPole-v1__clip__s{seed}"
        assert _metrics(a) == _metrics(b), seed
        sa, sb = checkpoint.load(checkpoint.latest(a)), checkpoint.load(checkpoint.latest(b))
        assert all(torch.equal(sa["agent"][k], sb["agent"][k]) for k in sa["agent"])


def test_controller_down_is_one_line(tmp_path):
    """A slurm.conf whose controller does not answer: one line naming the local cluster script, exit 2."""
    conf = Path(os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")).read_text().splitlines()
    conf = [x for x in conf if not x.startswith(("SlurmctldPort", "MessageTimeout"))]
    dead = tmp_path / "slurm.conf"
    dead.write_text("\n".join(conf + ["SlurmctldPort=6999", "MessageTimeout=1"]) + "\n")
    env = {**os.environ, "SLURM_CONF": str(dead)}
    p = _py(RECIPE, "--launcher", "slurm", "--seeds", "0-1", "--sweep-dir", str(tmp_path / "s"), *TINY, env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: SLURM is not reachable") and p.stderr.count("\n") == 1, p.stderr
    assert "local_cluster.sh start" in p.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_a_run_over_two_ranks_is_one_job_preempted_requeued_and_exact(tmp_path):
    """`--nproc-per-node 2 --launcher slurm`: one job of 2 tasks (each a rank, submitit's
    TorchDistributedEnvironment); preempted mid-run (USR2 to both tasks), both ranks stop at one update, one
    checkpoint, the job is requeued and resumes; then one of its ranks is killed (kill -9): the other's collective
    fails, it requeues the job, which resumes from the newest checkpoint; its metrics equal the local 2-rank run's,
    row for row."""
    sdir = tmp_path / "sweep"
    ranks = ["--nproc-per-node", "2"]  # TINY's 4 envs: 2 per rank
    p = _py(RECIPE, "--launcher", "slurm", "--cluster", "local", "--env", "CartPole-v1", "--seeds", "0",
            "--sweep-dir", str(sdir), *TINY, *ranks)
    assert p.returncode == 0, p.stderr
    sbatch = next((sdir / "slurm").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --ntasks-per-node=2" in sbatch
    jid = json.loads((sdir / "manifest.json").read_text())["runs"][0]["job_id"]
    target = sdir / "runs" / "CartPole-v1__clip__s0"
    end = time.time() + 180
    while _rows(target) < 3:
        assert time.time() < end, sweep.format_table(sweep.status(sdir))
        time.sleep(0.1)
    assert _rows(target) < UPDATES, "the run finished before it could be preempted: raise UPDATES"
    subprocess.run(["scancel", "--signal=USR2", f"{jid}.0"], check=True, timeout=30)

    # requeued and running again: kill -9 its rank 1; rank 0's collective fails, it requeues the job once more
    end = time.time() + 180
    while (job := _job_state(target)).get("restarts", 0) < 1 or job.get("state") != "RUNNING":
        assert time.time() < end, sweep.format_table(sweep.status(sdir))
        time.sleep(0.1)
    resumed = _rows(target)  # (or more: the resumed run cuts its metrics back to its checkpoint first)
    while _rows(target) < resumed + 2:  # training again, past the ranks' rendezvous
        assert time.time() < end, sweep.format_table(sweep.status(sdir))
        time.sleep(0.1)
    pid = _rank_pid(job["slurm_job_id"], 1)
    assert _rows(target) < UPDATES, "the run finished before a rank could be killed: raise UPDATES"
    os.kill(pid, signal.SIGKILL)

    twin = tmp_path / "twin"  # the same run as 2 local ranks, uninterrupted
    p = _py(RECIPE, "--env-id", "CartPole-v1", "--run-dir", str(twin), *TINY, *ranks, timeout=400)
    assert p.returncode == 0, p.stderr

    rows = sweep.wait(sdir, timeout_s=400, poll_s=1.0)
    table = sweep.format_table(rows)
    assert rows[0].state == sweep.FINISHED and rows[0].restarts >= 2, table
    assert _metrics(target) == _metrics(twin / "CartPole-v1__clip__s0")


def _job_state(run: Path) -> dict:
    try:
        return json.loads((run / "job.json").read_text())
    except (OSError, ValueError):
        return {}


def _rank_pid(slurm_job_id: str, rank: int) -> int:
    """The process of task ``rank`` (the rank) of a running job's step 0 (``scontrol listpids``)."""
    end = time.time() + 60
    while time.time() < end:
        out = subprocess.run(["scontrol", "listpids", slurm_job_id], capture_output=True, text=True, timeout=30).stdout
        for line in out.splitlines()[1:]:
            pid, _, step, _, global_id = (line.split() + [""] * 5)[:5]
            if step == "0" and global_id == str(rank):
                return int(pid)
        time.sleep(0.2)
    raise AssertionError(f"no task {rank} in job {slurm_job_id}")


@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_a_pack_over_two_nodes_is_one_job_and_the_local_ranks_run(tmp_path):
    """`--pack 2 --nodes 2 --nproc-per-node 1 --cluster local-2nodes`: one SLURM job over the local cluster's two
    virtual nodes (a rank on each, the rendezvous at the first node's name), training a pack of two seeds over the
    ranks; every member's metrics and weights equal the same pack over 2 local ranks (a local sweep's unit over
    ``--nproc-per-node`` ranks: a process each here)."""
    sdir, twin = tmp_path / "sweep", tmp_path / "twin"
    small = [*TINY, "--total-steps", str(128 * 8)]
    p = _py(RECIPE, "--launcher", "slurm", "--cluster", "local-2nodes", "--seeds", "0-1", "--pack", "2",
            "--nodes", "2", "--nproc-per-node", "1", "--sweep-dir", str(sdir), *small)
    assert p.returncode == 0, p.stderr
    assert "submitted 2 run(s) in 1 job(s)" in p.stdout, p.stdout
    sbatch = next((sdir / "slurm").rglob("*_submission.sh")).read_text()
    assert "#SBATCH --nodes=2" in sbatch and "#SBATCH --ntasks-per-node=1" in sbatch, sbatch
    p = _py(RECIPE, "--seeds", "0-1", "--pack", "2", "--nproc-per-node", "2", "--sweep-dir", str(twin), *small,
            timeout=300)
    assert p.returncode == 0, p.stderr
    pack_json = json.loads(next((twin / "packs").rglob("pack.json")).read_text())
    assert "collectives" in json.dumps(pack_json), "the local sweep did not run its pack over ranks"
    rows = sweep.wait(sdir, timeout_s=300, poll_s=1.0)
    assert all(r.state == sweep.FINISHED for r in rows), sweep.format_table(rows)
    jid = json.loads((sdir / "manifest.json").read_text())["runs"][0]["job_id"]
    nodes = subprocess.run(["sacct", "-n", "-X", "-P", "-j", str(jid), "-o", "NodeList"], capture_output=True,
                           text=True, timeout=30).stdout.split()
    assert nodes and nodes[0] == "ppo-vnode[1-2]", nodes
    for seed in range(2):
        a, b = sdir / "runs" / f"CartPole-v1__clip__s{seed}", twin / "runs" / f"CartPole-v1__clip__s{seed}"
        assert _metrics(a) == _metrics(b) and len(_metrics(a)) == 8, seed
        sa, sb = checkpoint.load(checkpoint.latest(a)), checkpoint.load(checkpoint.latest(b))
        assert all(torch.equal(sa["agent"][k], sb["agent"][k]) for k in sa["agent"]), seed
