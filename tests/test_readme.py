"""Every command the README and the docs (docs/*.md) show is exercised, so an edit cannot silently break one.

Each command of a ```bash block is either run here *as printed* (in a scratch folder where `recipes/` is
the repository's, with a small budget appended where the command would train for hours, and `NAME`, a
placeholder for a cluster profile, set to the local one), or named in ``ELSEWHERE`` with the tests that
run it. A command found in neither fails :func:`test_every_readme_command_is_exercised`; so does an
entry here that neither the README nor the docs show any more, or one that names a test that does not exist.
Their ```python blocks are run by ``tests/test_readme_loop.py`` and ``tests/test_torchrl.py``
(:func:`test_every_python_block_is_run`).
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--total-steps", "2048", "--eval-every", "1", "--eval-episodes", "1"]


def documents() -> list[Path]:
    """README.md and the docs' pages: the files whose commands and code blocks must run as printed."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_commands() -> list[str]:
    """The commands of the ```bash blocks of README.md and docs/*.md: continuation lines joined, comments
    dropped."""
    text = "\n".join(doc.read_text() for doc in documents())
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                out.append(" ".join(line.split()))
    return out


# README command -> how it is run here: extra arguments appended (a small budget where it trains for
# hours), or a command of its own when the printed one is a template.
AS_PRINTED: dict[str, list[str]] = {
    "pip install torch==2.13.0 && pip install -e . && python recipes/atari.py --total-steps 16384 --eval-episodes 1": [],
    "python recipes/atari.py --help": [],
    "python -m ppo_pipeline.play runs/Hopper-v5__clip__s0 --episodes 10 --video videos/": ["--episodes", "3"],
    "python -m ppo_pipeline.export runs/Hopper-v5__clip__s0 --out policy.pt2": [],
    "python recipes/mujoco.py --capture-video --track --wandb-project ppo": SMALL,
    "python recipes/classic_control.py --env-id my_pkg.envs:MyEnv": ["--total-steps", "256"],
    "python recipes/classic_control.py --env-module my_pkg --env-id MyEnv-v0": ["--total-steps", "256"],
    "python recipes/mujoco.py --experiment table1 --launcher slurm --cluster NAME": ["--dry-run"],
    "python recipes/atari.py --experiment table6 --launcher slurm --cluster NAME": ["--dry-run"],
    "python recipes/mujoco.py --experiment table1 --env-id Hopper-v5,Walker2d-v5 --seeds 0 --total-steps 100000 --dry-run": [],
    "python recipes/mujoco.py --clip-epsilon 0.1,0.2,0.3 --lr 3e-4,1e-3 --seeds 0-2 --dry-run": [],
    "python recipes/mujoco.py --experiment table1 --env-id Hopper-v5 --pack 33 --dry-run": [],
    "python recipes/mujoco.py --experiment table1 --pack 33 --dry-run": [],
    "python recipes/humanoid.py --experiment figure4 --dry-run": [],
    "python recipes/humanoid.py --experiment figure4 --launcher slurm --cluster NAME --nproc-per-node 8 --dry-run": [],
    "python recipes/humanoid.py --env-id HumanoidFlagrunBulletEnv-v0 --num-envs 128 --nodes 4 --nproc-per-node 8 "
    "--launcher slurm --cluster NAME --dry-run": [],
    "python recipes/humanoid.py --env-id Humanoid-v5 --num-envs 32 --total-steps 10000000": [
        "--total-steps", "2048", "--num-envs", "2", "--num-steps", "1024", "--minibatch-size", "1024",
        "--eval-episodes", "1", "--eval-max-steps", "50"],
    "python recipes/classic_control.py --env-id examples.envs:CartPoleNoVel --policy lstm": ["--total-steps", "512"],
    "python recipes/classic_control.py --env-id examples.envs:MaskedChain": ["--total-steps", "512"],
    "python recipes/classic_control.py --env-id examples.envs:DictCartPole": ["--total-steps", "512"],
    "python recipes/classic_control.py --env-id examples.envs:TargetCode": ["--total-steps", "512"],
    "python recipes/mujoco.py --seeds 0-7 --clip-epsilon 0.1,0.2 --pack 8 --total-steps 20000": [
        "--total-steps", "2048", "--eval-episodes", "1"],
    "python recipes/classic_control.py --env-id examples.envs:DictCartPole --seeds 0-1 --pack 2": [
        "--total-steps", "1024", "--eval-episodes", "1"],
    "python -m ppo_pipeline.report runs/ sweeps/table1/ --out report/": [],
    "python recipes/mujoco.py --env-id dmc:cheetah-run": SMALL,
    "python -m ppo_pipeline.bench --pack 8,33 --envs hopper,cartpole": ["--pack", "2", "--envs", "cartpole",
                                                                        "--pack-updates", "2"],
    "python -m ppo_pipeline.bench --paths --envs cartpole,hopper,pong,cheetah": ["--envs", "cartpole",
                                                                                  "--steps", "cartpole=1024"],
    "python -m ppo_pipeline.bench --minibatch --steps hopper=61440 --repeat 5": ["--envs", "cartpole",
                                                                                "--repeat", "3"],
    "python recipes/mujoco.py --env-id dmc:cheetah-run --pixels": ["--total-steps", "256", "--num-steps", "128",
                                                                  "--minibatch-size", "64", "--eval-episodes", "1",
                                                                  "--eval-max-steps", "100", "--name", "pixels"],
    "python recipes/mujoco.py --env-id torchrl:my_pkg.torchrl_envs:make_env": SMALL,
    "python recipes/classic_control.py --collector torchrl --collector-workers 2": ["--total-steps", "256"],
    "python recipes/classic_control.py --num-envs 8 --nproc-per-node 2 --total-steps 8192 --run-dir ranks-runs": [
        "--total-steps", "1024"],
    "python -m ppo_pipeline.bench --peer-dir ../shared/peers/cleanrl --peer-python /tmp/peer-venv/bin/python "
    "--repeat 3": ["--envs", "cartpole", "--steps", "cartpole=2048", "--repeat", "1"],
}

# README command -> the tests (or .ci/run) that run it.
ELSEWHERE: dict[str, list[str]] = {
    "bash scripts/test.sh": [".ci/run"],
    'pip install -e ".[docs]" && mkdocs build --strict': ["tests/test_docs.py::test_docs_site_builds_strict"],
    "python recipes/atari.py": ["tests/test_recipes.py::test_recipe_defaults_start_stop_and_resume"],
    "python recipes/mujoco.py": ["tests/test_recipes.py::test_recipe_defaults_start_stop_and_resume"],
    "python recipes/classic_control.py": ["tests/test_recipes.py::test_recipe_defaults_start_stop_and_resume"],
    "python recipes/humanoid.py": ["tests/test_recipes.py::test_recipe_defaults_start_stop_and_resume"],
    "python -m pytest tests/test_properties_*.py tests/test_mutants.py tests/test_objectives.py -q": [".ci/run"],
    'python -m pytest -m "not slow" -q -n 2': [".ci/run"],   # the fast tier: a subset of what CI runs
    "HYPOTHESIS_PROFILE=thorough python -m pytest tests/test_properties_*.py -q":
        ["tests/conftest.py"],   # the profile it selects; the property files themselves run in .ci/run
    "python recipes/mujoco.py --launcher slurm --cluster NAME --seeds 0-4 --env Hopper-v5,Walker2d-v5 "
    "--objective clip,kl_adaptive [--sweep-dir DIR] [--max-parallel N]":
        ["tests/test_slurm.py::test_sweep_preempt_resume_status", "tests/test_sweep.py::test_local_sweep_interrupted_then_resumed"],
    "python -m ppo_pipeline.sweep status DIR [--json] [--wait S]":
        ["tests/test_slurm.py::test_sweep_preempt_resume_status", "tests/test_sweep.py::test_local_sweep_interrupted_then_resumed"],
    "python -m ppo_pipeline.sweep resume DIR":
        ["tests/test_slurm.py::test_sweep_preempt_resume_status", "tests/test_sweep.py::test_local_sweep_interrupted_then_resumed"],
    "python -m ppo_pipeline.sweep cancel DIR": ["tests/test_slurm.py::test_cancel_then_resume"],
    # the pip-installable peer: its own venv (skipped where /tmp/sb3-venv is absent), then the bench beside it
    'python3 -m venv /tmp/sb3-venv && /tmp/sb3-venv/bin/pip install torch==2.13.0 && /tmp/sb3-venv/bin/pip install '
    'stable-baselines3 "gymnasium[mujoco]==1.4.0"': ["tests/test_bench_sb3.py::test_bench_beside_sb3"],
    "python -m ppo_pipeline.bench --peer sb3 --peer-python /tmp/sb3-venv/bin/python --envs cartpole,hopper --repeat 3":
        ["tests/test_bench_sb3.py::test_bench_beside_sb3",
         "tests/test_bench_sb3.py::test_peer_hyperparameters_match_the_bench"],
}


def test_every_readme_command_is_exercised():
    shown = readme_commands()
    assert shown, "no ```bash block found in README.md or docs/"
    missing = [c for c in shown if c not in AS_PRINTED and c not in ELSEWHERE]
    assert not missing, f"README/docs commands no test exercises (add them to tests/test_readme.py): {missing}"
    stale = [c for c in [*AS_PRINTED, *ELSEWHERE] if c not in shown]
    assert not stale, f"entries for commands neither the README nor the docs show any more: {stale}"
    fixtures = [c for c in shown if re.search(r"--env-(id|module)[ =](torchrl:)?tests[.:]", c)]
    assert not fixtures, f"commands that point users at test fixtures (ship examples instead): {fixtures}"
    for where in ELSEWHERE.values():
        for node in where:
            if node == ".ci/run":
                assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()
                continue
            if node == "tests/conftest.py":
                assert 'register_profile("thorough"' in (ROOT / node).read_text()
                continue
            path, name = node.split("::")
            tree = ast.parse((ROOT / path).read_text())
            assert name in {f.name for f in tree.body if isinstance(f, ast.FunctionDef)}, node


def test_every_python_block_is_run():
    """README.md and docs/*.md show two ```python blocks, and each is run: the loop of one's own (README,
    after ``<!-- user-loop -->``: tests/test_readme_loop.py) and ``ppo_pipeline.train`` with a transform chain
    (tests/test_torchrl.py::test_readme_torchrl_example_trains)."""
    blocks = [(doc.name, m) for doc in documents()
              for m in re.finditer(r"(<!-- user-loop -->\s*)?```python\n(.*?)```", doc.read_text(), re.S)]
    loops = [name for name, m in blocks if m.group(1)]
    trains = [name for name, m in blocks if not m.group(1) and "ppo_pipeline.train(" in m.group(2)]
    assert loops == ["README.md"] and len(trains) == 1, blocks
    assert len(blocks) == 2, f"a ```python block no test runs: {[(n, m.group(2)[:80]) for n, m in blocks]}"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """A folder that looks like the repository to the README's commands: recipes/ is the real one, and
    my_pkg is a user's package that defines an env class and registers an id for it."""
    d = tmp_path_factory.mktemp("readme")
    (d / "recipes").symlink_to(ROOT / "recipes")
    (d / "examples").symlink_to(ROOT / "examples")
    pkg = d / "my_pkg"
    pkg.mkdir()
    (pkg / "envs.py").write_text((ROOT / "tests" / "custom_envs.py").read_text()
                                 + f"\n\nclass MyEnv({_custom_env_class()}):\n    pass\n")
    (pkg / "torchrl_envs.py").write_text((ROOT / "tests" / "torchrl_envs.py").read_text()
                                         + "\n\nmake_env = pendulum\n")
    (pkg / "__init__.py").write_text(textwrap.dedent("""
        import gymnasium
        gymnasium.register("MyEnv-v0", entry_point="my_pkg.envs:MyEnv")
    """))
    return d


def _custom_env_class() -> str:
    tree = ast.parse((ROOT / "tests" / "custom_envs.py").read_text())
    return next(n.name for n in tree.body if isinstance(n, ast.ClassDef))


def run_as_printed(command: str, extra: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    """The python part of a README command, run in ``cwd`` with this interpreter (pip steps are the
    README's test command's own: scripts/test.sh installs the same way)."""
    part = command.split("&&")[-1].strip()
    argv = shlex.split(part.replace("--cluster NAME", "--cluster local")) + extra
    assert argv[0] == "python", command
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "offline", "WANDB_SILENT": "true",
           "WANDB_DIR": str(cwd)}
    p = subprocess.run([sys.executable, *argv[1:]], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{command}\nrc={p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def run_all_as_printed(commands: list[str], cwd: Path, workers: int = 2) -> list[subprocess.CompletedProcess]:
    """:func:`run_as_printed` for each of ``commands`` (with its ``AS_PRINTED`` extra), two at a time (a
    command's start-up is single-threaded imports: two of them share the 2 cores), results in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda c: run_as_printed(c, AS_PRINTED[c], cwd), commands))


@pytest.mark.slow
def test_help_and_dry_runs(scratch):
    cmds = [c for c, extra in AS_PRINTED.items() if "--help" in c or "--dry-run" in c or "--dry-run" in extra]
    for cmd, p in zip(cmds, run_all_as_printed(cmds, scratch)):
        if "--dry-run" in cmd + " ".join(AS_PRINTED[cmd]):
            assert "nothing started (--dry-run)" in p.stdout and "plan:" in p.stdout, cmd
        else:
            assert "(default: ALE/Pong-v5)" in " ".join(p.stdout.split())
    assert not (scratch / "sweeps").exists()


@pytest.mark.slow
def test_humanoid_command_as_printed(scratch):
    """docs/results.md's Figure 4 command, on a budget of two updates of 2 envs."""
    cmd = "python recipes/humanoid.py --env-id Humanoid-v5 --num-envs 32 --total-steps 10000000"
    p = run_as_printed(cmd, AS_PRINTED[cmd], scratch)
    assert "last-100 training return" in p.stdout, p.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.alone  # ranks that wait on each other (tests/conftest.py)
def test_ranks_command_as_printed(scratch):
    """docs/ranks.md's command: 2 ranks of one run, rank 0 alone speaks and writes the run directory."""
    cmd = "python recipes/classic_control.py --num-envs 8 --nproc-per-node 2 --total-steps 8192 --run-dir ranks-runs"
    p = run_as_printed(cmd, AS_PRINTED[cmd], scratch)
    assert p.stdout.count("last-100 training return") == 1, p.stdout[-2000:]
    assert (scratch / "ranks-runs" / "CartPole-v1__clip__s0" / "summary.json").exists()


@pytest.mark.slow
def test_variant_commands_as_printed(scratch):
    cmds = [c for c in AS_PRINTED if "examples.envs" in c and "--pack" not in c]
    for cmd, p in zip(cmds, run_all_as_printed(cmds, scratch)):
        assert "last-100 training return" in p.stdout, cmd


@pytest.mark.slow
def test_bench_pack_as_printed():
    cmd = next(c for c in AS_PRINTED if "bench --pack" in c)
    p = run_as_printed(cmd, AS_PRINTED[cmd], ROOT)
    assert "cartpole    2" in p.stdout and "x |" in p.stdout, p.stdout


@pytest.mark.slow
def test_pack_sweep_as_printed(scratch):
    cmd = next(c for c in AS_PRINTED if "--pack 8" in c)
    p = run_as_printed(cmd, AS_PRINTED[cmd], scratch)
    assert "16/16 runs finished" in p.stdout and "2/2 packs finished" in p.stdout, p.stdout[-2000:]
    cmd = next(c for c in AS_PRINTED if "DictCartPole --seeds 0-1 --pack 2" in c)   # Dict observations pack
    p = run_as_printed(cmd, AS_PRINTED[cmd], scratch)
    assert "2/2 runs finished" in p.stdout and "1/1 packs finished" in p.stdout, p.stdout[-2000:]


@pytest.mark.slow
def test_main_command_then_report(scratch):
    main = next(c for c in AS_PRINTED if c.startswith("pip install"))
    # the README's report reads runs/ and a sweep dir: a tiny CartPole sweep makes one, beside the main command
    sweep = subprocess.Popen([sys.executable, "recipes/classic_control.py", "--seeds", "0-1", "--total-steps", "512",
                              "--eval-episodes", "0", "--no-progress", "--sweep-dir", "sweeps/table1"], cwd=scratch,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
    p = run_as_printed(main, [], scratch)
    assert "16,384 agent steps (65,536 frames)" in p.stdout + p.stderr
    run = scratch / "runs" / "ALE-Pong-v5__clip__s0"
    assert (run / "summary.json").exists()
    _, err = sweep.communicate(timeout=300)
    assert sweep.returncode == 0, err[-2000:]
    report = next(c for c in AS_PRINTED if "ppo_pipeline.report" in c)
    p = run_as_printed(report, ["--random-episodes", "1"], scratch)
    md = (scratch / "report" / "report.md").read_text()
    assert "ALE/Pong-v5" in md and "CartPole-v1" in md


@pytest.mark.slow
def test_mujoco_tools_as_printed(scratch):
    """--capture-video --track, then play (with videos) and export of that run, as the README prints them."""
    track = next(c for c in AS_PRINTED if "--capture-video" in c)
    run_as_printed(track, AS_PRINTED[track], scratch)
    run = scratch / "runs" / "Hopper-v5__clip__s0"
    assert list((run / "videos").glob("*.mp4")) and (run / "summary.json").exists()
    play = next(c for c in AS_PRINTED if "ppo_pipeline.play" in c)  # 3 of its 10 episodes: a video each
    p, _ = run_all_as_printed([play, next(c for c in AS_PRINTED if "ppo_pipeline.export" in c)], scratch)
    assert "return" in p.stdout and len(list((scratch / "videos").glob("*.mp4"))) == 3
    assert (scratch / "policy.pt2").stat().st_size > 0


@pytest.mark.slow
def test_own_env_commands_as_printed(scratch):
    for cmd in [c for c in AS_PRINTED if "my_pkg" in c and "torchrl" not in c]:
        p = run_as_printed(cmd, AS_PRINTED[cmd], scratch)
        assert "256 agent steps" in p.stdout + p.stderr, cmd


@pytest.mark.slow
def test_torchrl_commands_as_printed(scratch):
    cmds = [c for c in AS_PRINTED if "dmc:" in c or "torchrl" in c]
    for cmd, p in zip(cmds, run_all_as_printed(cmds, scratch)):
        assert " agent steps = " in p.stdout and "final eval return" in p.stdout, cmd


def test_bench_minibatch_as_printed():
    """The eager update's cost per minibatch, the run's beside plain torch (CartPole only: the row, not the figures)."""
    cmd = next(c for c in AS_PRINTED if "--minibatch" in c)
    p = run_as_printed(cmd, AS_PRINTED[cmd], ROOT)
    cells = next(line for line in p.stdout.splitlines() if line.startswith("cartpole ")).split("|")[0].split()
    assert cells[1:4] == ["128", "1", "eager"] and float(cells[4]) > 0 and float(cells[5]) > 0, p.stdout


@pytest.mark.slow
def test_bench_paths_as_printed():
    """One row per env backend x collector (CartPole only, tiny budget: the rows, not the figures)."""
    cmd = next(c for c in AS_PRINTED if "--paths" in c)
    p = run_as_printed(cmd, AS_PRINTED[cmd], ROOT)
    rows = [line.split() for line in p.stdout.splitlines() if line.startswith("cartpole ")]
    assert [r[1:3] for r in rows] == [["gymnasium", "lean"], ["torchrl", "lean"], ["gymnasium", "torchrl"],
                                      ["torchrl", "torchrl"], ["gymnasium", "torchrl"]], p.stdout
    assert rows[-1][3] == "x2" and all(float(r[-2]) > 0 for r in rows) and rows[0][-1] == "1.00", p.stdout


@pytest.mark.slow
def test_bench_as_printed():
    """The bench beside CleanRL, from the repository root as the README says (tiny CartPole budget). Where
    the peer's folder or venv is not set up (``../shared/peers/README.md`` says how), the same command
    without them: ours only, and no ratio."""
    cmd = next(c for c in AS_PRINTED if "ppo_pipeline.bench" in c and "--peer-dir" in c)
    peer = (ROOT / "../shared/peers/cleanrl/cleanrl/ppo.py").is_file() and Path("/tmp/peer-venv/bin/python").is_file()
    if not peer:
        cmd = cmd.replace("--peer-dir ../shared/peers/cleanrl --peer-python /tmp/peer-venv/bin/python ", "")
    p = run_as_printed(cmd, AS_PRINTED[next(c for c in AS_PRINTED if "ppo_pipeline.bench" in c and "--peer-dir" in c)],
                       ROOT)
    row = next(line for line in p.stdout.splitlines() if line.startswith("cartpole"))
    cells = row.split("|")[0].split()
    assert cells[1] == "2048" and float(cells[3]) > 0, p.stdout
    if peer:   # the ratio is of the unrounded figures, shown to 2 decimals
        assert float(cells[2]) > 0 and abs(float(cells[4]) - float(cells[3]) / float(cells[2])) < 0.02, p.stdout
    else:
        assert cells[2] == "-" and cells[4] == "-", p.stdout
