"""``python -m assets run``: materialize the graph, or a selection, through Dagster (``factory run``
hands its process over to it; ``make run`` calls that).

Runs the global asset job in this process against the Dagster instance in ``$DAGSTER_HOME``
(default ``<factory home>/dagster``), so the runs, materializations and check results appear in
the UI afterwards. Prints a progress line per asset as it finishes (``assets.progress``), then
where the release is and how to open the Dagster and MLflow UIs.
"""

import argparse
import os
import sys
import time
import uuid

from factory.config import PROFILE_ENV, load_profile
from factory.stages import stage_specs, validate_profile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m assets", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="materialize every asset (or a selection) with a profile")
    run.add_argument("--profile", default=os.environ.get(PROFILE_ENV, "demo"))
    run.add_argument("--select", nargs="*", help="asset keys (default: all)")
    args = parser.parse_args(argv)

    os.environ[PROFILE_ENV] = args.profile
    profile = load_profile(args.profile)
    errors = validate_profile(profile)
    if not errors:
        known = [spec.asset for spec in stage_specs(profile)]
        errors = [f"unknown asset {a!r}; known: {', '.join(known)}" for a in args.select or [] if a not in known]
    if errors:
        print(f"profile {profile.name!r}: nothing run:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 2
    os.environ.setdefault("DAGSTER_HOME", str(profile.home / "dagster"))
    from assets.instance import ensure_dagster_yaml

    ensure_dagster_yaml(os.environ["DAGSTER_HOME"])

    import dagster as dg

    from assets.definitions import defs
    from assets.progress import RunProgress, duration, expected_builds
    from factory.runner import Runner

    job = defs.resolve_implicit_global_asset_job_def()
    selection = [a for a in known if a in (args.select or known)]
    progress = RunProgress(selection, expected_builds(Runner(profile, log=lambda _: None), selection),
                           profile.home / "timings" / f"{profile.name}.json")
    estimate, untimed = progress.estimate()
    print(f"{len(selection)} selected, {len(progress.building)} to build; ~{duration(estimate)}"
          + (f" (+{untimed} untimed)" if untimed else ""), flush=True)
    started = time.perf_counter()
    run_id = str(uuid.uuid4())
    with dg.DagsterInstance.get() as instance:
        instance.add_event_listener(run_id, progress.on_event)
        result = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(a) for a in selection],
                                        run_id=run_id, raise_on_error=False)
    minutes = (time.perf_counter() - started) / 60
    if not result.success:
        print(f"\nFAILED after {minutes:.1f} min; see the step errors above, or the run in the Dagster UI.",
              file=sys.stderr)
        return 1
    from factory.lineage import MLFLOW_UI_HOST, MLFLOW_UI_PORT, artifact_path, mlflow_ui
    from factory.store import open_store

    store = open_store(profile)
    print(f"\nDone in {minutes:.1f} min with profile '{profile.name}'.")
    try:
        print(f"Release:      {artifact_path(store, 'quantized_release')}")
    except FileNotFoundError:
        pass
    print("Audit it:     .venv/bin/factory lineage quantized_release")
    print(f"Dagster UI:   DAGSTER_HOME={os.environ['DAGSTER_HOME']} FACTORY_PROFILE={args.profile} "
          ".venv/bin/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000   (or: make ui)")
    if mlflow_ui(profile.mlflow_tracking_uri) == profile.mlflow_tracking_uri.rstrip("/"):  # a server: its own UI
        print(f"MLflow UI:    {profile.mlflow_tracking_uri}")
    else:
        print(f"MLflow UI:    .venv/bin/mlflow ui --backend-store-uri {profile.mlflow_tracking_uri} "
              f"-h {MLFLOW_UI_HOST} -p {MLFLOW_UI_PORT}   (or: make mlflow)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
