"""xlt's modules import one another without cycles, and the formats below the model do not reach up to it."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[2] / "src"


def _module(path: Path) -> str:
    parts = path.relative_to(SOURCE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(path): path for path in SOURCE.joinpath("xlt").rglob("*.py")}


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return inside


def _owner(name: str) -> str | None:
    """The module ``name`` (a module or a name inside one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    names = [f"{node.module}.{alias.name}" for alias in node.names]
    return [name if name in MODULES else str(node.module) for name in names]


def imports(module: str, type_checking: bool = False) -> set[str]:
    """What ``module`` imports at module level or inside functions (and under TYPE_CHECKING if asked)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    skipped = set() if type_checking else _type_checking_nodes(tree)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in skipped:
            found.update(owner for name in _imported(node) if (owner := _owner(name)) not in (None, module))
    return found


def _cycle_from(start: str, graph: dict[str, set[str]]) -> list[str] | None:
    path, on_path, done = [start], {start}, set()

    def visit(module: str) -> list[str] | None:
        for target in sorted(graph[module]):
            if target in on_path:
                return [*path[path.index(target) :], target]
            if target not in done:
                path.append(target)
                on_path.add(target)
                found = visit(target)
                if found:
                    return found
                on_path.discard(path.pop())
        done.add(module)
        return None

    return visit(start)


def test_no_import_cycles():
    graph = {module: imports(module) for module in MODULES}
    graph["xlt"] = set()  # the package root re-exports; no module imports it (checked below)
    for module in sorted(MODULES):
        assert _cycle_from(module, graph) is None, f"import cycle: {' -> '.join(_cycle_from(module, graph) or [])}"


def test_no_module_imports_the_package_root():
    assert [module for module in MODULES if module != "xlt" and "xlt" in imports(module)] == []


def test_formats_below_the_model_import_no_model():
    """XLTModel saves and loads through the native format, so it and what it uses stay below the model."""
    for module in ("xlt.formats.native", "xlt.formats.tensors", "xlt.formats.atomic"):
        assert "xlt.model" not in imports(module, type_checking=True), module


# The layers, lowest first, as the README's architecture section states them: a module imports only modules of
# its own layer or below (imports under TYPE_CHECKING, which never run, may name a higher layer for a hint).
LAYERS: list[tuple[str, ...]] = [
    ("xlt.errors", "xlt.version", "xlt.digest", "xlt.records", "xlt.batching", "xlt.assembly", "xlt.e5_tokenizer"),
    ("xlt.paths", "xlt.plan", "xlt.fingerprint", "xlt.languages"),
    ("xlt.formats.atomic",),  # files written whole or not at all, by every layer above that writes
    ("xlt.reps",),
    ("xlt.routing", "xlt.tasks"),
    ("xlt.hosts",),
    ("xlt.runtime",),
    ("xlt.formats.tensors", "xlt.formats.native", "xlt.formats.foreign"),
    ("xlt.model",),
    ("xlt.formats",),
    ("xlt.e5", "xlt.loading", "xlt.tour"),
    ("xlt.training",),
    ("xlt.matrix",),
    ("xlt.serve",),
    ("xlt.demo", "xlt.train_cli", "xlt.cli", "xlt"),
]


def layer(module: str) -> int:
    """The layer of ``module``: that of the longest prefix named in LAYERS."""
    best, found = -1, -1
    for number, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), number
    assert found >= 0, f"{module} is in no layer: add it to LAYERS (and to the README's architecture section)"
    return found


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{module} -> {target}"
        for module in MODULES
        if module != "xlt"
        for target in imports(module)
        if layer(target) > layer(module)
    )
    assert upward == [], upward
