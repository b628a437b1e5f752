"""Blocking asset checks: the Great Expectations suites of ``factory.expectations``.

Each suite reads the artifact its asset's materialization produced (``assets/artifacts.py``). A
failed suite fails the check and, being blocking, keeps every downstream asset from running.
"""


import dagster as dg

from assets.artifacts import checked_manifest
from assets.resources import FactoryResource
from factory.expectations import SUITES, load_frame, validate
from factory.store import open_store


def _check_for(asset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{asset}_expectations", blocking=True,
                    description=f"Great Expectations suite '{asset}' on the materialized artifact.")
    def _check(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
        store = open_store(factory.load())
        manifest = checked_manifest(context, store, asset)
        result = validate(asset, load_frame(asset, store.local_path(manifest)))
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={"artifact_key": manifest.key, "rows": result.rows,
                      "failures": dg.MetadataValue.json(result.failures)},
        )

    return _check


def build_checks() -> list[dg.AssetChecksDefinition]:
    return [_check_for(asset) for asset in SUITES]
