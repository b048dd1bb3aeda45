"""The example envs (``examples/envs.py``) are the test suite's too, one definition: the ids the docs, the tests and
the committed results name all resolve to its classes -- ``examples.envs:Name`` and the former names
``variant_envs:Name`` / ``tests.variant_envs:Name`` (``tests/variant_envs.py`` re-exports them), so the figures
measured under those ids (docs/results.md, results/) are of the envs the docs point users at."""

from __future__ import annotations

import re
from pathlib import Path

import gymnasium as gym
import pytest

import examples.envs
from ppo_pipeline.envs.ids import env_class

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(k for k, v in vars(examples.envs).items()
               if isinstance(v, type) and issubclass(v, gym.Env) and v.__module__ == "examples.envs")


# the envs committed results name under the former ids (tests/variant_envs.py); later ones have only examples.envs:
FORMER = ["CartPoleNoVel", "MaskedChain", "MaskedChainMethod", "DictCartPole", "DictImage", "TargetCode", "TargetBits"]


def test_the_examples_are_the_ones_the_docs_list():
    assert NAMES == sorted([*FORMER, "RepeatPrevious"])
    for name in NAMES:
        assert f"``{name}``" in examples.envs.__doc__, name


@pytest.mark.parametrize("name", NAMES)
def test_every_id_of_an_example_env_is_its_class(name):
    cls = getattr(examples.envs, name)
    for module in ("examples.envs", "variant_envs", "tests.variant_envs") if name in FORMER else ("examples.envs",):
        assert env_class(f"{module}:{name}") is cls, module
    env = cls()
    env.reset(seed=0)
    env.step(env.action_space.sample())
    env.close()


def test_the_ids_committed_results_name_resolve():
    """Every ``[tests.]variant_envs:Name`` id in results/ (reports, run lists, summaries, reproduce.sh) and the
    docs is an example env's."""
    files = [*ROOT.glob("results/**/*.md"), *ROOT.glob("results/**/*.csv"), *ROOT.glob("results/**/*.json"),
             *ROOT.glob("results/*.sh"), *ROOT.glob("docs/*.md")]
    ids = {m for f in files for m in re.findall(r"\b(?:tests\.)?variant_envs:\w+", f.read_text())}
    assert ids, "no committed result names a variant_envs id any more: drop tests/variant_envs.py's re-export"
    for env_id in sorted(ids):
        assert env_class(env_id) is getattr(examples.envs, env_id.rpartition(":")[2]), env_id
