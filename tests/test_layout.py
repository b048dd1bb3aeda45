"""The package's shape: layers import downwards only (no import circle, no import of a higher layer,
function-level imports included), no module over 450 lines, no class over 200."""

from __future__ import annotations

import ast
import io
import tokenize
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ppo_pipeline"
# Sizes in logical lines (statements: tokenize's NEWLINE tokens), which the formatter's wrapping does not change;
# 450 / 200 physical lines before `ruff format` (issue 26 item 11) were ~300 / ~165 logical ones.
MAX_MODULE_LINES = 300
MAX_CLASS_LINES = 170

# The layers, lowest first: a module may import its own layer and the layers below it, never one above.
# An entry names top-level modules and packages of ppo_pipeline (a package holds its submodules).
LAYERS: list[tuple[str, ...]] = [
    ("errors", "config", "batch", "paper", "workarounds", "threads", "process", "rundir", "cli"),  # the base
    ("envs",),
    ("algo",),
    ("pack",),
    ("run",),       # one run; its metrics write the evaluation videos (run/video.py)
    ("tools",),     # play, export, bench (whose figures the sweeps' cost estimates read)
    ("sweeps",),
    ("report",),
    # the front doors: the package itself, ppo_pipeline.train, the recipes' launch of runs and sweeps,
    # the `python -m ppo_pipeline.X` shims
    ("ppo_pipeline", "api", "launch", "play", "export", "bench", "sweep"),
]


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is its ``__init__``)."""
    out = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules that ``name`` imports anywhere in its file (top level or inside functions)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod not in known:
                continue
            subs = {f"{mod}.{a.name}" for a in node.names} & known.keys()
            out.update(subs or {mod})
            if len(subs) < len(node.names):      # names that are not submodules come from mod itself
                out.add(mod)
    out.discard(name)
    return out


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_sees_a_circle():      # the checker itself can fail
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def layer_of(module: str) -> int:
    """The index in :data:`LAYERS` of a dotted module name of the package."""
    parts = module.split(".")
    key = parts[1] if len(parts) > 1 else parts[0]
    for i, names in enumerate(LAYERS):
        if key in names:
            return i
    raise KeyError(f"{module} is in no layer of LAYERS: add it to tests/test_layout.py")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b"`` for every import of a module ``b`` from a layer above ``a``'s."""
    return [f"{a} -> {b}" for a in sorted(graph) for b in sorted(graph[a]) if layer_of(b) > layer_of(a)]


def test_imports_point_down():
    graph = import_graph()
    unplaced = sorted(n for n in graph if not any(n == "ppo_pipeline" or n.split(".")[1] in names
                                                  for names in LAYERS))
    assert not unplaced, f"modules in no layer of LAYERS: {unplaced}"
    up = upward_imports(graph)
    assert not up, "imports of a higher layer: " + "; ".join(up)


def test_upward_imports_sees_an_upward_edge(tmp_path):   # the checker itself can fail
    assert upward_imports({"ppo_pipeline.run.metrics": {"ppo_pipeline.tools.play", "ppo_pipeline.config"},
                           "ppo_pipeline.tools.play": {"ppo_pipeline.run.metrics"}}) == [
        "ppo_pipeline.run.metrics -> ppo_pipeline.tools.play"]
    # every import form the graph reads, top level or in a function, relative or absolute
    known = dict.fromkeys(("ppo_pipeline.run.metrics", "ppo_pipeline.run", "ppo_pipeline.tools", "ppo_pipeline.tools.play", "ppo_pipeline.sweeps", "ppo_pipeline.sweeps.sweep", "ppo_pipeline.report", "ppo_pipeline.api", "ppo_pipeline"), PKG / "x.py")
    for source in ("from ..tools import play", "from ..tools.play import main", "import ppo_pipeline.tools.play",
                   "from ppo_pipeline.tools.play import main", "def f():\n    from ..sweeps import sweep",
                   "def f():\n    import ppo_pipeline.report", "from .. import api", "from .. import tools"):
        f = tmp_path / "metrics.py"
        f.write_text(source + "\n")
        up = upward_imports({"ppo_pipeline.run.metrics": imports("ppo_pipeline.run.metrics", f, known)})
        assert up and all(e.startswith("ppo_pipeline.run.metrics -> ") for e in up), source


def test_config_is_a_leaf():
    """The typed config imports nothing of the package but its one-line error type."""
    assert import_graph()["ppo_pipeline.config"] <= {"ppo_pipeline.errors"}


def logical_lines(text: str, first: int = 1, last: int | None = None) -> int:
    """Statements (logical lines) between physical lines ``first`` and ``last``."""
    return sum(tok.type == tokenize.NEWLINE and first <= tok.start[0] <= (last or tok.start[0])
               for tok in tokenize.generate_tokens(io.StringIO(text).readline))


def test_module_and_class_sizes():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        n = logical_lines(text)
        if n > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {n} logical lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and (n := logical_lines(text, node.lineno, node.end_lineno)) > MAX_CLASS_LINES:
                too_long.append(f"class {name}.{node.name}: {n} logical lines")
    assert not too_long, "; ".join(too_long)


def test_logical_lines_ignore_wrapping():
    assert logical_lines("x = f(1,\n      2)\ny = 3\n") == logical_lines("x = f(1, 2)\ny = 3\n") == 2


def test_results_hold_no_machine_paths():
    """Committed results name files relative to the run directory (summaries) or as typed (reports):
    nothing of the machine they ran on."""
    import re

    results = PKG.parent / "results"
    machine = re.compile(r"(?<![\w.])/(work|tmp|root|home|Users|scratch)/")
    found = [str(p.relative_to(results)) for p in results.rglob("*")
             if p.suffix in (".json", ".md", ".csv", ".txt") and machine.search(p.read_text(errors="replace"))]
    assert not found, f"machine paths in {found[:5]}"
