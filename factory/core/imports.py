"""Static import scan of the project's source: which modules each module imports, read from its syntax tree.

One scanner for two readers: the layer test (``tests/test_layers.py``: every arrow points down) and
the stage code versions (``factory.core.code_version``: a stage's version covers what it imports).
An import is any ``import``/``from ... import`` statement, at module level or inside a function
or an ``if``; an ``importlib.import_module("...")`` or ``__import__("...")`` call with a literal
name; and a ``"module:object"`` string naming a module of the project's packages (the stage table
names its functions and config classes that way). A dynamic import whose name is computed cannot
be followed: ``scan`` reports where it is, and the layer test refuses it.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

# The project's top-level packages, lowest layer first (docs/architecture.md, "Layers").
PACKAGES = ("kernels", "factory", "ray_jobs", "assets")
_TARGET = re.compile(rf"^((?:{'|'.join(PACKAGES)})(?:\.\w+)*):\w+$")


@dataclass(frozen=True)
class Imports:
    """What one module imports, as written (a name may be ``module.object`` from ``from module import object``)."""

    names: frozenset[str]
    relative: tuple[int, ...]  # lines of relative imports (the tree uses absolute ones; they are not followed)
    computed: tuple[tuple[str, int], ...]  # (function, line) of each import_module/__import__ with a computed name


def module_sources(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Module name -> source of every Python file of ``packages`` under ``root`` (a package is its ``__init__``)."""
    sources = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            sources[".".join(parts)] = path.read_text()
    return sources


def scan(tree: ast.AST) -> Imports:
    """Every import of a parsed module (see the module doc for what counts)."""
    names: set[str] = set()
    relative: list[int] = []
    computed: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                relative.append(node.lineno)
                continue
            base = node.module or ""
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}  # ``from pkg import module``
        elif isinstance(node, ast.Call):
            name = getattr(node.func, "attr", getattr(node.func, "id", ""))
            if name in ("import_module", "__import__"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    names.add(arg.value)
                else:
                    computed.append((name, node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (m := _TARGET.match(node.value)):
            names.add(m.group(1))
    return Imports(frozenset(names), tuple(relative), tuple(computed))


def project_module(name: str, modules: Collection[str]) -> str | None:
    """The module of ``modules`` an imported name refers to (``a.b.c`` may be object ``c`` of ``a.b``), else None."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None
