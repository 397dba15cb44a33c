"""The package's shape (DESIGN.md, "Target shape"): stage folders, one-way imports, small modules.

These read the source (imports inside functions count; ``TYPE_CHECKING``
blocks do not), so a refactor that brings back a cycle, an upward import or
a 700-line module fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "adaptive_codec"
#: Folders that use the package and that no stage may import.
USERS = {"train", "bench"}
MAX_MODULE_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Package modules ``name`` imports (absolute or relative, at any depth, outside TYPE_CHECKING)."""
    deps: set[str] = set()
    is_package = path.name == "__init__.py"

    def targets(node) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = name.split(".") if is_package else name.split(".")[:-1]
        if node.level:
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        return [module] + [f"{module}.{a.name}" for a in node.names]

    def visit(node) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for target in targets(node):
                while target and target not in MODULES:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("adaptive_codec"):
                    deps.add(target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return deps


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "<root>"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None:
                found = dfs(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None:
            found = dfs(node)
            if found:
                return found
    return None


def test_no_module_import_cycles():
    # A package's __init__ re-exporting its modules is not a cycle of ideas.
    graph = {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in GRAPH.items()}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_no_folder_import_cycles():
    folders: dict[str, set[str]] = {}
    for module, deps in GRAPH.items():
        src = _folder(module)
        if src == "<root>":
            continue  # the root's facade, errors and resources serve every folder
        folders.setdefault(src, set()).update(
            f for f in map(_folder, deps) if f not in (src, "<root>"))
    assert _cycle(folders) is None, " -> ".join(_cycle(folders))


def test_stages_never_import_train_or_bench():
    offenders = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
                       if _folder(m) not in USERS | {"cli"} and _folder(d) in USERS)
    assert not offenders, offenders


def test_modules_are_small():
    big = sorted(f"{m} ({n})" for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES)
    assert not big, big


def test_the_facade_passes_data_forward():
    """No pipeline stage imports the facade (stages never call back into AdaptiveCodec)."""
    callers = sorted(m for m, deps in GRAPH.items() if "adaptive_codec.codec" in deps
                     and _folder(m) in {"audio", "analysis", "profiles", "planning", "backbone", "pipeline",
                                        "entropy", "container"})
    assert not callers, callers


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
