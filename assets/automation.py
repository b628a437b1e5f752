"""When the factory rebuilds, by Dagster's declarative automation: one condition per asset, and the
crawl's WARC files as an observed source asset.

Policy (docs/architecture.md, "Rebuilds"):

- ``warc_files`` (observable source asset) is what ``raw_crawl`` reads from outside the store: its
  configured ``warc_paths`` (local or ``s3://`` globs) and the inbox. Observed every
  ``WARC_OBSERVATION_CRON`` tick; its data version is the fingerprint the runner puts in
  ``raw_crawl``'s artifact key (``factory.runner.files_fingerprint``: name + size + mtime locally,
  ETag remotely), so a new, replaced or removed WARC file is a new data version and an
  unchanged listing is not an update.
- ``data`` group: rebuilds as soon as something it depends on changed (``on_change``): an input
  was updated (for ``raw_crawl``, a new ``warc_files`` data version), its stage's code version
  changed, or it went missing. Corpus stages are cheap next to training and the nightly training
  wants fresh shards.
- ``pretraining``, ``posttraining``, ``safety``, ``release``: rebuild at the nightly
  ``NIGHTLY_CRON`` tick only if, since they were last requested or updated, their code version
  changed, an input was updated or they went missing (``nightly``). A night with no change requests
  nothing; a change during the day waits for the night, so one training run takes in all of the
  day's changes. An asset due at the tick whose input is still being built waits for it and runs
  when it lands; an input that lands after the tick is taken in the next night.
- Nothing runs while an input is missing or in progress, or the asset itself is in progress. An
  asset requested in the same tick as its input counts as updated (Dagster's ``any_deps_updated``),
  so a change requests the changed asset and everything below it that the policy lets run then.

Why Dagster's conditions and not a staleness check of our own: the evaluation of every condition is
recorded per tick, so the UI shows, per asset, which sub-condition (``code_version_changed``,
``any_deps_updated``, the cron tick) made it run or kept it waiting. What Dagster sees differs from
the artifact key in two ways, both harmless because the runner still decides by key (a request
whose key exists is a reuse: seconds, no MLflow run): ``code_version_changed`` compares the asset's
code version with the one of the previous evaluation (the condition's cursor), not with the last
materialization's; and ``any_deps_updated`` counts any materialization of an input, a reuse too.
A profile edit changes no code version, so no condition sees it: materialize the edited asset by
hand (``factory run ASSET``) and its downstream follows by this policy.
"""

import dagster as dg

from assets.resources import FactoryResource
from factory.runner import files_fingerprint
from factory.stages import StageSpec, stage_config, stage_specs

NIGHTLY_CRON = "0 3 * * *"
# Every 15 minutes, off the quarter hours: an observation is a short run of its own, never part of
# the nightly tick's run (one tick's requests share a run).
WARC_OBSERVATION_CRON = "7-59/15 * * * *"
CRAWL_STAGE = "raw_crawl"  # the stage whose external files warc_files observes
WARC_FILES = dg.AssetKey("warc_files")

AC = dg.AutomationCondition


@dg.observable_source_asset(
    name=WARC_FILES.path[-1],
    group_name="data",
    description="The WARC files raw_crawl reads: its configured warc_paths (local or s3:// globs) and the inbox.",
    automation_condition=(AC.cron_tick_passed(WARC_OBSERVATION_CRON) & ~AC.in_progress()).with_label(
        f"observe every tick of {WARC_OBSERVATION_CRON}"),
)
def warc_files(factory: FactoryResource) -> dg.ObserveResult:
    profile = factory.load()
    spec = next(s for s in stage_specs(profile) if s.asset == CRAWL_STAGE)
    config = stage_config(spec, profile)
    files = config.external_files()
    return dg.ObserveResult(data_version=dg.DataVersion(files_fingerprint(files)), metadata={"files": len(files)})


def external_deps(spec: StageSpec) -> list[dg.AssetKey]:
    """Source assets a stage's asset depends on besides its inputs: ``warc_files`` for the crawl."""
    return [WARC_FILES] if spec.asset == CRAWL_STAGE else []


def _changed_since_handled() -> dg.AutomationCondition:
    """Code version changed, an input updated (or requested this tick) or the asset went missing,
    since the asset was last requested or updated."""
    return (AC.code_version_changed() | AC.any_deps_updated() | AC.newly_missing()).since_last_handled().with_label(
        "changed since last requested or updated")


def _can_run() -> dg.AutomationCondition:
    return (~AC.any_deps_missing() & ~AC.any_deps_in_progress() & ~AC.in_progress()).with_label(
        "inputs present, nothing in progress")


def on_change() -> dg.AutomationCondition:
    """The data group's condition: as soon as something changed."""
    return (_changed_since_handled() & _can_run()).with_label("on_change")


def nightly() -> dg.AutomationCondition:
    """The training and release groups' condition: at the nightly tick, if something changed."""
    due = (_changed_since_handled() & AC.cron_tick_passed(NIGHTLY_CRON)).since_last_handled().with_label(
        f"changed at a tick of {NIGHTLY_CRON}")
    return (due & _can_run()).with_label(f"nightly({NIGHTLY_CRON})")


def automation_condition(spec: StageSpec) -> dg.AutomationCondition:
    return on_change() if spec.group == "data" else nightly()


automation_sensor = dg.AutomationConditionSensorDefinition(
    "factory_automation",
    target=dg.AssetSelection.all() | dg.AssetSelection.assets(WARC_FILES),
    minimum_interval_seconds=60,
    description="Evaluates every asset's automation condition (assets/automation.py) and requests "
                "the runs and the warc_files observations they call for.",
)
