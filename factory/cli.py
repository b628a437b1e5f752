"""The ``factory`` console script: lineage audits, benchmarks and materializing the graph."""

from __future__ import annotations

import argparse
import sys

from factory.bench import benchmarks, emit
from factory.core.environment import apply_env


def _bench(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="factory bench", description="Run a benchmark against its peers.")
    sub = parser.add_subparsers(dest="name", required=True)
    modules = benchmarks()
    for name, module in modules.items():
        p = sub.add_parser(name, help=(module.__doc__ or "").strip().splitlines()[0])
        p.add_argument("--json", action="store_true", help="print one JSON object {results: [...]}")
        module.add_arguments(p)
    args = parser.parse_args(argv)
    rows = modules[args.name].run(args)
    print(emit(rows, args.json))
    return 0


def _lineage(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="factory lineage",
        description="Walk an asset's artifacts back to the raw crawl, re-hashing every stored file.",
    )
    parser.add_argument("asset", help="asset key, e.g. quantized_release")
    parser.add_argument("--profile", default=None, help="profile name or YAML path (default: $FACTORY_PROFILE or demo)")
    args = parser.parse_args(argv)

    from factory.config import load_profile
    from factory.lineage import audit, format_audit
    from factory.store import ArtifactStore

    profile = load_profile(args.profile)
    store = ArtifactStore(profile.artifact_root, local_dir=profile.home)
    try:
        nodes = audit(store, args.asset)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_audit(nodes))
    failed = [n for n in nodes if n.problems]
    reached = {n.manifest.stage for n in nodes}
    if failed:
        print(f"\nAUDIT FAILED: {len(failed)} artifact(s) no longer match their manifests.", file=sys.stderr)
        return 1
    if "raw_crawl" not in reached:
        print("\nAUDIT FAILED: the chain does not reach raw_crawl.", file=sys.stderr)
        return 1
    print(f"\nOK: {len(reached)} artifacts verified back to raw_crawl.")
    return 0


def main(argv: list[str] | None = None) -> int:
    apply_env()
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"bench": _bench, "lineage": _lineage}
    if not argv or argv[0] not in commands:
        print(f"usage: factory {{{','.join(commands)}}} ...", file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
