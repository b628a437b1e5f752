"""Benchmarks: ``factory bench NAME`` runs the project and its named peer in one command.

Each benchmark module exposes ``add_arguments(parser)`` and ``run(args) -> list[dict]``: one row
per contender, each with a ``name`` (``factory``, ``trafilatura``, ``hf``, ...) and its figures.
The CLI prints the rows as a table with ratios against the ``factory`` row, or with ``--json`` as
one object ``{"results": rows}``. A benchmark that pins the process to one core or sets torch's
thread count does so inside ``factory.bench.cpu.cpu_settings``, which gives the process its own settings back.
"""

from __future__ import annotations

import importlib
import json
from types import ModuleType
from typing import Any


def benchmarks() -> dict[str, ModuleType]:
    """Every benchmark module by name (imported here, not at CLI start-up: they pull in torch)."""
    return {
        "extract": importlib.import_module("factory.bench.extract"),
        "dedup": importlib.import_module("factory.bench.dedup"),
        "curate": importlib.import_module("factory.bench.curate"),
        "train": importlib.import_module("factory.bench.train"),
        "generate": importlib.import_module("factory.bench.generate"),
        "faults": importlib.import_module("factory.bench.faults"),
    }


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows -> aligned text table; numeric columns also get a ratio vs. the ``factory`` row."""
    if not rows:
        return "(no results)"
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    base = next((r for r in rows if r.get("name") == "factory"), None)
    cells = [columns]
    for row in rows:
        line = []
        for col in columns:
            value = row.get(col, "")
            text = f"{value:.4g}" if isinstance(value, float) else str(value)
            ref = base.get(col) if base else None
            if (
                base is not None and row is not base and isinstance(value, (int, float)) and not isinstance(value, bool)
                and isinstance(ref, (int, float)) and not isinstance(ref, bool) and value
            ):
                text += f" (factory {ref / value:.2f}x)"
            line.append(text)
        cells.append(line)
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(columns))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def emit(rows: list[dict[str, Any]], as_json: bool) -> str:
    return json.dumps({"results": rows}, default=float) if as_json else format_table(rows)
