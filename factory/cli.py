"""The ``factory`` console script: running the graph, validating profiles, lineage audits, benchmarks
and the local cluster. Each verb parses its own arguments (``factory VERB --help``), so listing the
verbs imports nothing heavy."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from factory.bench import benchmarks, emit
from factory.config import PROFILE_ENV
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
    if not args.json:
        print(emit(modules[args.name].run(args), as_json=False))
        return 0
    # Only the JSON document goes to stdout: from here on everything else written to file descriptor
    # 1 (Ray's worker logs forwarded to this driver, a child process) or to sys.stdout (a library's
    # print) goes to stderr, so a program can parse stdout.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    with contextlib.redirect_stdout(sys.stderr):
        rows = modules[args.name].run(args)
    print(emit(rows, as_json=True), file=out, flush=True)
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
    from factory.store import open_store

    profile = load_profile(args.profile)
    store = open_store(profile)
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


def _cluster(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="factory cluster",
        description="A local multi-node cluster on 127.0.0.1: 2 Ray nodes, SeaweedFS S3, MLflow server "
        "(docs/cluster.md).",
    )
    parser.add_argument("action", choices=["up", "down", "status", "env"])
    parser.add_argument("--dir", type=Path, default=None, help="state folder (default: $FACTORY_HOME/cluster)")
    parser.add_argument("--port-base", type=int, default=None,
                        help="first port (default: $FACTORY_CLUSTER_PORT_BASE or 26000); up only")
    parser.add_argument("--purge", action="store_true", help="down: also remove the folder (S3 data, mlflow.db, logs)")
    parser.add_argument("--json", action="store_true", help="up/status: print the state as JSON")
    args = parser.parse_args(argv)

    from factory import localcluster

    def log(message: str) -> None:
        print(message, file=sys.stderr)

    if args.action == "up":
        state = localcluster.up(args.dir, base=args.port_base, log=log)
        if args.json:
            print(json.dumps(state, indent=2))
        else:
            verb = f"up in {state.get('up_seconds')} s" if state["started"] else "already up"
            print(f"cluster {verb}; state in {state['state_dir']}")
            for key, value in state["addresses"].items():
                print(f"  {key:16} {value}")
            print(f"client environment: eval \"$(factory cluster env{' --dir ' + str(args.dir) if args.dir else ''})\"")
        return 0
    if args.action == "down":
        result = localcluster.down(args.dir, purge=args.purge, log=log)
        print(f"cluster down in {result['down_seconds']} s" + (" (folder removed)" if args.purge else ""))
        return 0
    if args.action == "status":
        state = localcluster.status(args.dir)
        if args.json:
            print(json.dumps(state, indent=2))
        elif not state["recorded"]:
            print(f"no cluster recorded in {state['state_dir']}")
        else:
            print(f"cluster {'up' if state['up'] else 'NOT up'}; state in {state['state_dir']}")
            for name, alive in state["alive"].items():
                print(f"  {name:10} pid {state['processes'][name]['pid']:>7}  {'alive' if alive else 'dead'}")
            for name, ok in state["answering"].items():
                print(f"  {name:10} {'answering' if ok else 'not answering'}")
        return 0 if state["up"] else 1
    try:
        print(localcluster.format_env(localcluster.client_env(args.dir)))
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="factory run",
        description="Materialize the graph (or the named assets) through Dagster, one progress line per asset.",
    )
    parser.add_argument("--profile", default=None, help="profile name or YAML path (default: $FACTORY_PROFILE or demo)")
    parser.add_argument("assets", nargs="*", metavar="ASSET", help="asset keys (default: every asset)")
    args = parser.parse_args(argv)
    # The Dagster entry point is a layer above the library, so it is run, not imported: this process
    # becomes `python -m assets run` (Ctrl-C reaches Dagster's run directly, its exit status is ours).
    command = [sys.executable, "-m", "assets", "run", "--profile", args.profile or os.environ.get(PROFILE_ENV, "demo")]
    if args.assets:
        command += ["--select", *args.assets]
    sys.stdout.flush()
    os.execv(sys.executable, command)
    return 1  # not reached: execv replaces the process


def _validate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="factory validate",
        description="Validate profiles before anything runs: every section against its stage's config "
        "(misspelt sections, unknown keys, wrong values).",
    )
    parser.add_argument("--profile", action="append", default=None,
                        help="profile name or YAML path; repeatable (default: every shipped profile)")
    args = parser.parse_args(argv)

    from pydantic import ValidationError

    from factory.config import available_profiles, load_profile
    from factory.stages import config_errors, stage_specs, validate_profile

    failed = 0
    for name in args.profile or available_profiles():
        try:
            profile = load_profile(name)
        except ValidationError as err:
            errors, profile = config_errors("runtime", err), None
        except (OSError, ValueError) as err:
            errors, profile = [str(err)], None
        else:
            errors = validate_profile(profile)
        if errors:
            failed += 1
            print(f"{name}: {len(errors)} error(s)\n  " + "\n  ".join(errors))
        else:
            specs = stage_specs(profile)
            print(f"{profile.name}: OK ({len(specs)} stages, {len(profile.sections)} sections set, "
                  f"launcher {profile.runtime.launcher})")
    return 1 if failed else 0


VERBS = {
    "run": (_run, "materialize the graph (or named assets) through Dagster, with progress"),
    "validate": (_validate, "check profiles: unknown sections and keys, wrong values"),
    "lineage": (_lineage, "walk an asset's artifacts back to the raw crawl, re-hashing every file"),
    "bench": (_bench, "run a benchmark against its peers"),
    "cluster": (_cluster, "a local multi-node cluster: up, down, status, env"),
}


def _parser() -> argparse.ArgumentParser:
    verbs = "\n".join(f"  {name:10} {text}" for name, (_, text) in VERBS.items())
    parser = argparse.ArgumentParser(
        prog="factory", description="The model factory's command line.", epilog=f"verbs:\n{verbs}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("verb", choices=VERBS, metavar="VERB", help="what to do (below)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the verb's arguments (factory VERB --help)")
    return parser


def main(argv: list[str] | None = None) -> int:
    apply_env()
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    return VERBS[args.verb][0](args.args)


if __name__ == "__main__":
    sys.exit(main())
