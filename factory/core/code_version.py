"""Per-stage code versions: the part of an artifact key that stands for the code which built it.

A stage's version covers the code the stage runs and nothing else: the modules its targets name
(the stage table's ``"module:function"`` and ``"module:Class"``), every project module (``factory``,
``kernels``) they import, transitively, as ``factory.core.imports`` reads them (function-level
imports and literal ``import_module`` names included), and the packages' ``__init__`` modules that
importing them runs. Third-party code is not hashed: it is pinned, and the package version
(``factory.__version__``) stands for it. So an edit to the report re-keys ``eval_report`` only,
and an edit to the trainer re-keys the stages that train, not ``raw_crawl``.

Each module counts by its *normalized* source: the dump of its syntax tree without string
statements (docstrings, attribute notes). Comments, formatting and docstrings change nothing a
stage computes, and re-keying on them would retrain every model downstream of a comment fix. The
dump depends on the Python minor version, which the project pins (``requires-python``), so a
driver and its jobs agree. A target outside the project's packages (a test's stage function)
counts by its name only.

The project's index (sources parsed, imports scanned) is built once per process and each
version cached, so the runner and Dagster can ask for every asset's version cheaply.
"""

from __future__ import annotations

import ast
import hashlib
from functools import cache
from pathlib import Path

from factory import __version__
from factory.core.imports import module_sources, project_module, scan

CODE_PACKAGES = ("factory", "kernels")  # the library's own packages; factory never imports the entry points


class _DropStringStatements(ast.NodeTransformer):
    def visit_Expr(self, node: ast.Expr) -> ast.Expr | None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return None
        return node


class CodeIndex:
    """The import graph and normalized-source digests of the project packages under ``root``."""

    def __init__(self, root: Path):
        self._sources = module_sources(root, CODE_PACKAGES)
        # Filled as closures reach modules: a job asks for one stage and parses only what that stage runs.
        self._trees: dict[str, ast.Module] = {}
        self._imports: dict[str, set[str]] = {}
        self._digests: dict[str, str] = {}

    def imports(self, module: str) -> set[str]:
        """Project modules ``module`` imports directly, its parent packages included."""
        if module not in self._imports:
            tree = self._trees[module] = ast.parse(self._sources[module])
            names = scan(tree).names | _ancestors(module)
            self._imports[module] = {t for n in names if (t := project_module(n, self._sources)) and t != module}
        return self._imports[module]

    def closure(self, modules: set[str]) -> set[str]:
        """``modules`` of the project, their packages, and everything they import, transitively."""
        todo = [m for name in modules if (m := project_module(name, self._sources))]
        seen: set[str] = set()
        while todo:
            module = todo.pop()
            if module not in seen:
                seen.add(module)
                todo += self.imports(module) - seen
        return seen

    def digest(self, module: str) -> str:
        """sha256 of a module's syntax tree without its string statements (see the module doc)."""
        if module not in self._digests:
            self.imports(module)  # parses it
            tree = _DropStringStatements().visit(self._trees.pop(module))
            self._digests[module] = hashlib.sha256(ast.dump(tree).encode()).hexdigest()
        return self._digests[module]

    def version(self, *targets: str) -> str:
        """Version of the code behind ``targets`` (``"module:object"`` strings or module names)."""
        h = hashlib.sha256()
        for target in sorted(set(targets)):
            h.update(f"target {target}\n".encode())
        for module in sorted(self.closure({t.partition(":")[0] for t in targets})):
            h.update(f"module {module} {self.digest(module)}\n".encode())
        return f"{__version__}+{h.hexdigest()[:12]}"


def _ancestors(module: str) -> set[str]:
    """The packages importing ``module`` runs first: ``a.b.c`` -> ``{a, a.b}``."""
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


@cache
def project_index() -> CodeIndex:
    """The index of this checkout (the folder holding the ``factory`` package)."""
    return CodeIndex(Path(__file__).resolve().parents[2])


@cache
def code_version(*targets: str) -> str:
    """Version of the code behind ``targets`` in this checkout (``CodeIndex.version``), cached per process."""
    return project_index().version(*targets)
