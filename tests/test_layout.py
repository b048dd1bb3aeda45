"""The package's shape: layers import downwards only (no import circle, function-level imports
included), no module over 450 lines, no class over 200."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ppo_pipeline"
MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 200


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


def test_config_is_a_leaf():
    """The typed config imports nothing of the package but its one-line error type."""
    assert import_graph()["ppo_pipeline.config"] <= {"ppo_pipeline.errors"}


def test_module_and_class_sizes():
    too_long = []
    for name, path in modules().items():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_MODULE_LINES:
            too_long.append(f"module {name}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"class {name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "; ".join(too_long)


def test_results_hold_no_machine_paths():
    """Committed results name files relative to the run directory (summaries) or as typed (reports):
    nothing of the machine they ran on."""
    import re

    results = PKG.parent / "results"
    machine = re.compile(r"(?<![\w.])/(work|tmp|root|home|Users|scratch)/")
    found = [str(p.relative_to(results)) for p in results.rglob("*")
             if p.suffix in (".json", ".md", ".csv", ".txt") and machine.search(p.read_text(errors="replace"))]
    assert not found, f"machine paths in {found[:5]}"
