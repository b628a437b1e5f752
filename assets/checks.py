"""Blocking asset checks: the Great Expectations suites of ``factory.expectations``.

A failed suite fails the check and, being blocking, keeps every downstream asset from running.
"""


import dagster as dg

from assets.resources import FactoryResource
from factory.expectations import SUITES, load_frame, validate
from factory.store import open_store


def _check_for(asset: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{asset}_expectations", blocking=True,
                    description=f"Great Expectations suite '{asset}' on the latest artifact.")
    def _check(factory: FactoryResource) -> dg.AssetCheckResult:
        profile = factory.load()
        store = open_store(profile)
        folder = store.local_path(store.latest(asset))
        result = validate(asset, load_frame(asset, folder))
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={"rows": result.rows, "failures": dg.MetadataValue.json(result.failures)},
        )

    return _check


def build_checks() -> list[dg.AssetChecksDefinition]:
    return [_check_for(asset) for asset in SUITES]
