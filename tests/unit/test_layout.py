"""The package's shape, read from its syntax trees (nothing is imported): dependencies run one way.

plugin -> session -> data / graphs / backends / embedded -> core, where core is the top-level modules other than
the session/ and cli/ packages.  Every import counts, the lazy ones inside functions too: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "res2net_validate"
MAX_LINES = 600
NOT_CORE = {"session", "cli"}  # session/ and cli/ sit above the subpackages
# The session's parts and the plugin's classes stay small enough to hold in one's head.
MAX_CLASS_LINES = 200
MAX_PUBLIC_METHODS = 12


def _module_files() -> dict[str, Path]:
    """Dotted name below the package ('' for the package itself, 'graphs.export') -> file."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_files()


def _resolve(name: str) -> str:
    """The module a dotted name inside the package lives in (a name may be a function or class of it)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str, path: Path) -> set[str]:
    """Modules of the package that ``module`` imports, anywhere in its file."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            bases = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            elif node.module and (node.module == "res2net_validate" or node.module.startswith("res2net_validate.")):
                base = node.module.partition(".")[2]
            else:
                continue
            bases = [f"{base}.{alias.name}".lstrip(".") for alias in node.names]  # a submodule, or a name in base
        else:
            continue
        for name in bases:
            if isinstance(node, ast.Import):
                if not (name == "res2net_validate" or name.startswith("res2net_validate.")):
                    continue
                name = name.partition(".")[2]
            target = _resolve(name)
            if target != module:
                found.add(target)
    return found


EDGES = {(module, target) for module, path in MODULES.items() for target in _imports(module, path)}


def layer(module: str) -> str:
    """'core', a subpackage name ('graphs'), or a top-level module above the subpackages ('session')."""
    if module in NOT_CORE:
        return module
    top = module.split(".")[0]
    return top if top and (PACKAGE / top).is_dir() else "core"  # '' is the package's __init__.py: core


# Which layers each layer may import (its own always).
ALLOWED = {
    "core": {"core"},
    "data": {"core"},
    "backends": {"core"},
    "graphs": {"core", "data"},
    "embedded": {"core", "data", "graphs"},
    "reports": {"core"},
    "session": {"core", "data", "graphs", "backends", "embedded"},
    "plugin": {"core", "session", "data", "backends", "reports"},
}

def violations(source: str) -> list[tuple[str, str]]:
    allowed = ALLOWED[source] | {source}
    return sorted((a, b) for a, b in EDGES if layer(a) == source and layer(b) not in allowed)


def test_the_parser_sees_the_known_edges():
    # The reader itself can fail: check it finds imports of every form the package uses.
    assert ("graphs.export", "data.preprocess") in EDGES  # from ..data.preprocess import name (inside a function)
    assert ("predictions", "imagenet") in EDGES and ("data.labels", "imagenet") in EDGES
    assert ("plugin.outputs", "reports") in EDGES  # from ..reports import name, a package
    assert ("session.pipeline", "versions") in EDGES
    assert ("backends.onnxruntime", "ort_sessions") in EDGES
    assert layer("versions") == "core" and layer("") == "core" and layer("backends.tensorrt.engine") == "backends"
    assert layer("session") == "session" and layer("session.inputs") == "session" and layer("reports") == "reports"


def cycles(edges) -> list[list[str]]:
    """One path per back edge found by a depth-first walk: empty when the graph has no cycle."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    found = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def test_the_cycle_finder_finds_cycles():
    assert cycles({("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")}) == [["a", "b", "c", "a"]]
    assert cycles({("a", "b"), ("a", "c"), ("b", "c")}) == []


def test_no_import_cycle_between_modules():
    found = cycles(EDGES)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_import_cycle_between_layers():
    # plugin/hooks.py -> reports and reports/document.py -> plugin/report.py (now records.py) was a cycle of packages, not modules.
    found = cycles({(layer(a), layer(b)) for a, b in EDGES if layer(a) != layer(b)})
    assert not found, "layers importing each other: " + "; ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("source", sorted(ALLOWED))
def test_layers_import_only_below_themselves(source):
    found = violations(source)
    assert not found, f"{source} imports outside {sorted(ALLOWED[source])}: {found}"


def test_only_plugin_and_acceptance_import_plugin():
    found = sorted((a, b) for a, b in EDGES if layer(b) == "plugin" and layer(a) not in ("plugin", "acceptance"))
    assert not found, f"plugin/ imported from outside plugin/ and acceptance/: {found}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_over_the_line_limit(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{MODULES[module].relative_to(PACKAGE.parent)} has {lines} lines (at most {MAX_LINES})"


def _classes(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ClassDef):
            methods = [f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
            yield node.name, node.end_lineno - node.lineno + 1, [m for m in methods if not m.startswith("_")]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) in ("session", "plugin")))
def test_session_and_plugin_classes_stay_small(module):
    for name, lines, public in _classes(MODULES[module]):
        assert lines <= MAX_CLASS_LINES, f"{module}.{name} has {lines} lines (at most {MAX_CLASS_LINES})"
        assert len(public) <= MAX_PUBLIC_METHODS, (f"{module}.{name} has {len(public)} public methods "
                                                   f"(at most {MAX_PUBLIC_METHODS}): {public}")


def test_the_class_size_reader_can_fail(tmp_path):
    big = tmp_path / "big.py"
    big.write_text("class Big:\n" + "".join(f"    def m{i}(self):\n        pass\n" for i in range(13)))
    [(name, lines, public)] = list(_classes(big))
    assert (name, lines, len(public)) == ("Big", 27, 13)


def test_graphs_and_backends_never_call_up_into_the_session():
    # No callback up either: a lower layer that names the session (or a session part) would call into it.
    for module, path in MODULES.items():
        if layer(module) in ("core", "data", "graphs", "backends", "embedded", "reports"):
            text = path.read_text()
            assert "ValidationSession" not in text and "session." + "pipeline" not in text, module
