"""The import graph shows the layout (read from the sources with `ast`, nothing imported):

- no import circle among framework/'s modules at import time (module-level imports);
- no arrow upward: the core never imports the built-in `plugins` (they are found through their entry point,
  `framework.discovery`); a plugin never imports the run assembly (`framework.run`) or Hydra/OmegaConf; the
  engine never imports tracking, the run assembly, MLflow or Hydra (anywhere, function-level imports too).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for folder in ("framework", "plugins") for p in sorted((ROOT / folder).rglob("*.py"))}


def imports(name: str, top_level_only: bool) -> set[str]:
    """The modules `name` imports: `from a.b import c` is `a.b.c` where that is a module, else `a.b`; with
    `top_level_only`, the imports that run when the module is imported (not in functions, not TYPE_CHECKING)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = list(_top_level(tree.body)) if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: `from . import x` in package a.b is a.b.x
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *filter(None, [base])])
            for a in node.names:
                found.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return found


def _top_level(body):
    """Import statements executed at import time: module level, inside if/try/with, not `if TYPE_CHECKING`."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for part in (node.body, node.orelse, node.finalbody, *[h.body for h in node.handlers]):
                yield from _top_level(part)
        elif isinstance(node, ast.With):
            yield from _top_level(node.body)


def test_the_graph_reads_every_module():
    assert "framework.engine.trainer" in MODULES and "plugins.optimizers" in MODULES
    assert "framework.errors" in imports("framework.engine.trainer", top_level_only=True)


def circles(graph: dict[str, set[str]]) -> list[str]:
    """Every import circle a depth-first walk of `graph` (module -> modules it imports) meets, as "a -> b -> a"."""
    found, state = [], {}  # state: 1 on the current path, 2 done

    def visit(m, path):
        state[m] = 1
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                found.append(" -> ".join([*path[path.index(n):], n]))
            elif n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return found


def test_the_walk_finds_circles():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert circles({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_no_import_circle_in_the_framework():
    graph = {m: {i for i in imports(m, top_level_only=True) if i in MODULES} for m in MODULES
             if m.startswith("framework")}
    assert circles(graph) == []


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("where,forbidden", [
    ("framework", ["plugins"]),
    ("plugins", ["framework.run", "hydra", "omegaconf"]),
    ("framework.engine", ["framework.tracking", "framework.run", "mlflow", "hydra", "omegaconf"]),
])
def test_no_arrow_upward(where, forbidden):
    wrong = sorted(f"{m} imports {i}" for m in MODULES if _under(m, where)
                   for i in imports(m, top_level_only=False) if any(_under(i, f) for f in forbidden))
    assert wrong == []
