"""The import graph of llmcombo's packages, read from the source (no module is imported).

Used by ``tests/test_architecture.py`` and printable for the README: ``python tests/importgraph.py``.
A module depends on a package's ``__init__`` when it imports the package or a submodule of it
(importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``); edges from a package's own
``__init__`` to its submodules are not counted as cycles.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("llmcombo", "llmcombo_widgets")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            if "_vendor" in rel.parts:  # third-party files shipped as data, never imported
                continue
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def imports(path: Path, module: str, is_pkg: bool) -> list[tuple[str, bool]]:
    """``(imported name, at module level)`` for every import of a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top = {id(n) for n in tree.body}
    for n in tree.body:  # imports under `if TYPE_CHECKING:` at top level are not runtime imports
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            top |= {id(x) for x in ast.walk(n)}
            top.discard(id(n))
    out = []
    for n in ast.walk(tree):
        names: list[str] = []
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            if n.level:
                pkg = module if is_pkg else module.rsplit(".", 1)[0]
                for _ in range(n.level - 1):
                    pkg = pkg.rsplit(".", 1)[0]
                base = f"{pkg}.{base}" if base else pkg
            names = [base] + [f"{base}.{a.name}" for a in n.names]
        if names:
            out += [(name, id(n) in top) for name in names]
    return out


def graph(module_level_only: bool = False) -> dict[str, set[str]]:
    """module -> modules of llmcombo it imports (the deepest existing module of each name)."""
    mods = modules()
    g: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        g[mod]
        for name, at_top in imports(path, mod, path.name == "__init__.py"):
            if module_level_only and not at_top:
                continue
            target = name
            while target and target not in mods:
                target = target.rsplit(".", 1)[0] if "." in target else ""
            if target and target != mod and not target.startswith(mod + "."):
                g[mod].add(target)
    return dict(g)


def third_party_importers(prefix: str) -> set[str]:
    mods = modules()
    return {mod for mod, path in mods.items()
            if any(name == prefix or name.startswith(prefix + ".")
                   for name, _top in imports(path, mod, path.name == "__init__.py"))}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10000)

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


if __name__ == "__main__":
    g = graph()
    for mod in sorted(g):
        print(f"{mod} -> {', '.join(sorted(g[mod])) or '-'}")
    print("cycles:", cycles(g) or "none")
    print("mergekit imported by:", ", ".join(sorted(third_party_importers("mergekit"))))
