"""The import arrows of docs/architecture.md ("Layers"), checked on every import in the tree.

Every ``import``/``from ... import`` counts, at module level or inside a function, and so do the
imports made by name: ``importlib.import_module("...")`` with a literal, and ``"module:object"``
strings (the stage table names its functions that way). An ``import_module`` whose argument is
not a literal cannot be checked and is refused outside ``factory.stages.load_object``, which
resolves only the table's (checked) strings. The scan is the library's (``factory.core.imports``),
the one the stage code versions follow; the layer policy is this file's.
"""

from __future__ import annotations

import ast
from pathlib import Path

from factory.core.imports import module_sources, project_module, scan

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. A module may import its own component and any component of a lower layer;
# components that share a layer are siblings and may not import each other.
LAYERS: list[set[str]] = [
    {"kernels"},
    {"factory.core"},
    {"factory.model"},
    {"factory.quant"},
    {"factory.train"},
    {"factory.eval"},
    {"factory.data", "factory.scaling"},
    {"factory.pretrain"},
    {"factory.post", "factory.safety"},
    {"factory.release"},
    {"factory.orchestration"},
    {"factory.bench"},
    {"factory.cli"},
    {"ray_jobs"},
    {"assets"},
]
# Top-level modules of the library that together run the graph: one component.
ORCHESTRATION = {
    "config", "stages", "store", "locks", "lineage", "expectations", "jobs", "raycluster", "runner", "localcluster",
    "gates",
}
DYNAMIC_IMPORT_ALLOWED = {"factory.stages"}
# Third-party packages a layer must not import.
FORBIDDEN = {
    "kernels": {"factory", "assets", "ray_jobs", "dagster", "ray", "mlflow"},
    "factory": {"dagster", "assets", "ray_jobs"},
    "ray_jobs": {"dagster", "assets"},
}


def component(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "factory":
        return parts[0]
    if len(parts) == 1:  # the package root only holds __version__
        return "factory.core"
    return "factory.orchestration" if parts[1] in ORCHESTRATION else f"factory.{parts[1]}"


def layer_of(comp: str) -> int:
    for i, layer in enumerate(LAYERS):
        if comp in layer:
            return i
    raise KeyError(f"component {comp!r} has no layer in LAYERS (add it to docs/architecture.md and here)")


def imports_of(module: str, source: str) -> tuple[set[str], list[str]]:
    """(names imported, problems) of one module; relative and computed dynamic imports are problems."""
    found = scan(ast.parse(source))
    problems = [f"{module}: relative import at line {line} (the tree uses absolute imports)" for line in found.relative]
    if module not in DYNAMIC_IMPORT_ALLOWED:
        problems += [f"{module}: {name}() with a computed name at line {line}" for name, line in found.computed]
    return set(found.names), problems


def violations(sources: dict[str, str]) -> list[str]:
    """Every arrow that points up or sideways, every forbidden package, every unchecked dynamic
    import, and every import cycle among project modules."""
    modules = set(sources)
    out: list[str] = []
    graph: dict[str, set[str]] = {}
    for module, source in sources.items():
        names, problems = imports_of(module, source)
        out += problems
        top = module.split(".")[0]
        for name in sorted(names):
            if name.split(".")[0] in FORBIDDEN.get(top, set()):
                out.append(f"{module} imports {name} (forbidden for {top}/)")
        targets = {t for n in names if (t := project_module(n, modules)) and t != module}
        graph[module] = targets
        src = component(module)
        for target in sorted(targets):
            dst = component(target)
            if dst != src and layer_of(dst) >= layer_of(src):
                kind = "sideways" if layer_of(dst) == layer_of(src) else "upward"
                out.append(f"{module} -> {target}: {kind} arrow ({src} -> {dst})")
    out += [f"import cycle: {' -> '.join(c)}" for c in _cycles(graph)]
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected component of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                found.append(sorted(scc) + [sorted(scc)[0]])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_component_has_a_layer():
    for module in module_sources(ROOT):
        layer_of(component(module))


def test_tree_has_no_upward_arrow_and_no_cycle():
    assert violations(module_sources(ROOT)) == []


def test_planted_upward_imports_are_caught():
    planted = dict(module_sources(ROOT))
    planted["factory.model.llama"] += "\n\ndef _late():\n    from factory.runner import Runner\n    return Runner\n"
    planted["factory.train.trainer"] += "\nimport importlib\n_m = importlib.import_module('factory.post.rounds')\n"
    planted["factory.data.crawl"] += "\n_TARGET = 'factory.safety.guard:run_llama_guard'\n"
    planted["factory.eval.niah"] += "\nimport importlib\n_n = importlib.import_module('factory.' + 'data')\n"
    found = violations(planted)
    assert "factory.model.llama -> factory.runner: upward arrow (factory.model -> factory.orchestration)" in found
    assert "factory.train.trainer -> factory.post.rounds: upward arrow (factory.train -> factory.post)" in found
    assert "factory.data.crawl -> factory.safety.guard: upward arrow (factory.data -> factory.safety)" in found
    assert any(v.startswith("factory.eval.niah: import_module() with a computed name") for v in found)


def test_sibling_arrows_and_cycles_are_caught():
    planted = dict(module_sources(ROOT))
    planted["factory.post.rounds"] += "\nfrom factory.safety.taxonomy import CODES\n"
    planted["factory.store"] += "\nfrom factory.runner import Runner\n"
    found = violations(planted)
    assert "factory.post.rounds -> factory.safety.taxonomy: sideways arrow (factory.post -> factory.safety)" in found
    assert any(v.startswith("import cycle:") and "factory.runner" in v and "factory.store" in v for v in found)


def test_forbidden_packages_are_caught():
    planted = dict(module_sources(ROOT))
    planted["factory.lineage"] += "\nimport dagster\n"
    planted["kernels.rope"] += "\nimport factory.core.stage\n"
    found = violations(planted)
    assert "factory.lineage imports dagster (forbidden for factory/)" in found
    assert "kernels.rope imports factory.core.stage (forbidden for kernels/)" in found
