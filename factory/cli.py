"""The ``factory`` console script: lineage audits, benchmarks and materializing the graph."""

from __future__ import annotations

import argparse
import importlib
import sys

from factory.bench import BENCHMARKS, emit


def _bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="factory bench", description="Run a benchmark against its peers.")
    sub = parser.add_subparsers(dest="name", required=True)
    modules = {}
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(f"factory.bench.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"factory.bench.{name}":
                raise
            continue
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object {results: [...]}")
        module.add_arguments(p)
        modules[name] = module
    args = parser.parse_args(argv)
    rows = modules[args.name].run(args)
    print(emit(rows, args.json))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"bench": _bench}
    if not argv or argv[0] not in commands:
        print(f"usage: factory {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
