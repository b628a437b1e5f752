"""One Dagster asset per stage of ``factory.stages``: the graph is declared once, there.

Each asset materializes through ``factory.runner.Runner`` (artifact reuse, Ray Job submitted through
Dagster Pipes by ``assets.pipes.PipesJobLauncher``, MLflow run)
and reports what ``assets.metadata`` shows of it (stage metadata, plots, loss curve, MLflow run); the manifest digest
is the asset's data version and the stage's code version (``StageSpec.code_version``) the asset's
code version, so staleness follows content and the code each stage runs. Training stages (``train``
Ray jobs) share the concurrency pool ``training`` (``assets/instance.py``). A reused artifact reports
the MLflow run that built it (``mlflow_run_id``, with ``reused: true``): a reuse opens no run.
"""

import dagster as dg

from assets.automation import automation_condition, external_deps
from assets.instance import TRAINING_POOL
from assets.launchpad import config_schema
from assets.metadata import dagster_metadata
from assets.pipes import PipesJobLauncher
from assets.resources import FactoryResource
from factory.config import Profile
from factory.runner import Runner
from factory.stages import StageSpec, stage_specs, with_stage_config


def _asset_for(spec: StageSpec, profile: Profile) -> dg.AssetsDefinition:
    @dg.asset(
        name=spec.asset,
        group_name=spec.group,
        deps=[dg.AssetKey(name) for name in spec.inputs] + external_deps(spec),
        description=spec.description,
        kinds={"ray", "mlflow"},
        tags={"ray_job": spec.ray_job},
        code_version=spec.code_version,
        pool=TRAINING_POOL if spec.ray_job == "train" else None,  # one training at a time (assets/instance.py)
        config_schema=config_schema(spec, profile),  # the stage's config, the profile's values as defaults
        automation_condition=automation_condition(spec),  # when it rebuilds (assets/automation.py)
    )
    def _materialize(context: dg.AssetExecutionContext, factory: FactoryResource) -> dg.MaterializeResult:
        # Ray Jobs go through Dagster Pipes; the embedded default's task launcher needs no Pipes.
        # The run's stage config (assets/launchpad.py) replaces the stage's section for this materialization.
        profile = with_stage_config(factory.load(), spec, context.op_config)
        launcher = PipesJobLauncher(context) if profile.runtime.launcher == "job" else None
        runner = Runner(profile, log=context.log.info, launcher=launcher)
        outcome = runner.materialize(spec.asset, dagster_run_id=context.run_id)
        return dg.MaterializeResult(metadata=dagster_metadata(outcome, runner.store, profile.mlflow_tracking_uri),
                                    data_version=dg.DataVersion(outcome.manifest.digest))

    return _materialize


def build_assets(profile: Profile) -> list[dg.AssetsDefinition]:
    return [_asset_for(spec, profile) for spec in stage_specs(profile)]
