"""Blocking asset checks: the Great Expectations suites of ``factory.expectations``.

Each suite reads the artifact its asset's materialization produced (``assets/artifacts.py``). A
failed suite fails the check and, being blocking, keeps every downstream asset from running. A
suite is named after a stage's profile section, so every asset of that stage is checked by it
(``preference_data`` and each round's ``preference_round_k``).
"""


import dagster as dg

from assets.artifacts import checked_manifest
from assets.resources import FactoryResource
from factory.config import Profile
from factory.expectations import SUITES, load_frame, validate
from factory.stages import stage_specs
from factory.store import open_store


def _check_for(asset: str, suite: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{asset}_expectations", blocking=True,
                    description=f"Great Expectations suite '{suite}' on the materialized artifact.")
    def _check(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
        store = open_store(factory.load())
        manifest = checked_manifest(context, store, asset)
        result = validate(suite, load_frame(suite, store.local_path(manifest)))
        return dg.AssetCheckResult(
            passed=result.success,
            metadata={"artifact_key": manifest.key, "rows": result.rows,
                      "failures": dg.MetadataValue.json(result.failures)},
        )

    return _check


def build_checks(profile: Profile) -> list[dg.AssetChecksDefinition]:
    return [_check_for(spec.asset, spec.config_section) for spec in stage_specs(profile)
            if spec.config_section in SUITES]
