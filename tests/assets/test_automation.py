"""The automation policy (assets/automation.py) under Dagster's own evaluator: which assets it requests
after a code change, a new WARC file, and nothing, and the reason the UI shows for each request.

The real ``Definitions`` on an ephemeral instance; the WARC files are observed by a real observation
run (the job the sensor's request runs); the stages' materializations are recorded as runless
events carrying the tags a run records, so no stage runs. Ticks are simulated times: the first at
``DAY`` (12:00 UTC, between two observation ticks), the nightly one just after 03:00 the next
morning, after a tick a minute before it that requests the 02:52 observation (the sensor ticks
every minute).
"""

import datetime

import dagster as dg
import pytest

from assets.automation import NIGHTLY_CRON, WARC_FILES, WARC_OBSERVATION_CRON
from assets.resources import default_profile_name
from factory.config import load_profile
from factory.runner import external_fingerprint
from factory.stages import stage_config, stage_specs

DAY = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.UTC)
NIGHT = datetime.datetime(2026, 12, 2, 3, 0, 30, tzinfo=datetime.UTC)
MINUTE = datetime.timedelta(minutes=1)

DATA = {"raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus", "tokenizer", "data_mix"}
BELOW_DATA = {
    "scaling_law_fit", "base_checkpoint", "long_context_checkpoint", "annealed_checkpoint", "code_expert",
    "multilingual_expert", "preference_data", "reward_model", "sft_round_1", "dpo_round_1", "preference_round_2",
    "reward_round_2", "sft_round_2", "dpo_round_2", "chat_model", "llama_guard", "code_shield", "quantized_release",
    "eval_report",
}  # every asset downstream of data_mix (prompt_guard reads no asset)
BELOW_REWARD_MODEL = {"sft_round_1", "dpo_round_1", "preference_round_2", "reward_round_2", "sft_round_2",
                      "dpo_round_2", "chat_model", "code_shield", "quantized_release", "eval_report"}


class Ticks:
    """Successive evaluations of one ``Definitions`` (or its redeployed version) on one instance."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance, self.cursor = defs, instance, None

    def at(self, when: datetime.datetime, defs: dg.Definitions | None = None) -> dict[str, dg.AutomationResult]:
        self.defs = defs or self.defs
        result = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance, cursor=self.cursor,
                                                   evaluation_time=when)
        self.cursor = result.cursor
        self.last = {r.key.to_user_string(): r for r in result.results}
        return self.last

    def requested(self) -> set[str]:
        return {name for name, r in self.last.items() if not r.true_subset.is_empty}

    def night(self, night: datetime.datetime = NIGHT) -> set[str]:
        """What the nightly tick requests, after the tick before it (the 02:52 observation only)."""
        self.at(night - MINUTE)
        assert self.requested() == {"warc_files"}
        assert true_labels(self.last["warc_files"]) >= {f"observe every tick of {WARC_OBSERVATION_CRON}"}
        self.at(night)
        return self.requested()


def true_labels(result: dg.AutomationResult) -> set[str]:
    """Labels (or names) of the true nodes of an asset's evaluation as the sensor stores it for the UI."""
    labels, todo = set(), [result.serializable_evaluation]
    while todo:
        node = todo.pop()
        todo.extend(node.child_evaluations)
        if node.true_subset.size:
            labels.add(node.condition_snapshot.label or node.condition_snapshot.name)
    return labels


def observe_warc_files(defs: dg.Definitions, instance: dg.DagsterInstance) -> dg.AssetObservation:
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance,
                                                                          asset_selection=[WARC_FILES])
    assert run.success
    return instance.fetch_observations(WARC_FILES, limit=1).records[0].asset_observation


def redeployed(defs: dg.Definitions, asset: str) -> dg.Definitions:
    """``defs`` after an edit of one stage's code: the same Definitions, that asset's code version changed."""
    def edit(a):
        if isinstance(a, dg.AssetsDefinition) and a.key == dg.AssetKey(asset):
            return a.map_asset_specs(lambda spec: spec.replace_attributes(code_version=f"{spec.code_version}-edited"))
        return a

    return dg.Definitions(assets=[edit(a) for a in defs.assets], asset_checks=defs.asset_checks,
                          sensors=defs.sensors, resources=defs.resources, executor=defs.executor)


@pytest.fixture
def factory_defs(tmp_path, monkeypatch):
    """The real Definitions, their inbox under ``tmp_path``, every stage materialized once and the
    WARC files observed once before the first tick."""
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    from assets.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    observe_warc_files(defs, instance)
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(
            key, tags={"dagster/code_version": graph.get(key).code_version,
                       "dagster/data_version": f"digest-of-{key.to_user_string()}"}))
    ticks = Ticks(defs, instance)
    ticks.at(DAY)
    assert ticks.requested() == set()  # a first evaluation only records where things stand
    return ticks, tmp_path


def test_nothing_changed_requests_no_materialization(factory_defs):
    ticks, _ = factory_defs
    ticks.at(DAY + MINUTE)
    assert ticks.requested() == set()
    assert ticks.night() == set()
    assert "changed since last requested or updated" not in true_labels(ticks.last["base_checkpoint"])


def test_a_change_after_a_quiet_night_waits_for_the_next_night(factory_defs):
    ticks, _ = factory_defs
    assert ticks.night() == set()
    ticks.instance.report_runless_asset_event(dg.AssetMaterialization("data_mix"))  # rebuilt by hand in the day
    ticks.at(DAY + datetime.timedelta(days=1))
    assert ticks.requested() == {"warc_files"}  # the 11:52 observation; the quiet night left nothing due
    assert "changed since last requested or updated" in true_labels(ticks.last["scaling_law_fit"])
    assert ticks.night(NIGHT + datetime.timedelta(days=1)) == BELOW_DATA


def test_a_code_change_rebuilds_the_stage_and_its_downstream_at_night(factory_defs):
    ticks, _ = factory_defs
    ticks.at(DAY + MINUTE, defs=redeployed(ticks.defs, "reward_model"))  # seen at once, run at night
    assert ticks.requested() == set()
    assert {"code_version_changed", "changed since last requested or updated"} <= true_labels(
        ticks.last["reward_model"])
    assert "code_version_changed" not in true_labels(ticks.last["preference_data"])

    assert ticks.night() == {"reward_model", *BELOW_REWARD_MODEL}
    night = f"nightly({NIGHTLY_CRON})"
    assert {night, f"changed at a tick of {NIGHTLY_CRON}"} <= true_labels(ticks.last["reward_model"])
    assert {night, "any_deps_updated", "will_be_requested"} <= true_labels(ticks.last["sft_round_1"])

    ticks.at(NIGHT + MINUTE)  # requested once: the request handles the change
    assert ticks.requested() == set()


def test_a_new_warc_file_rebuilds_the_data_group_then_the_rest_at_night(factory_defs):
    ticks, home = factory_defs
    before = observe_warc_files(ticks.defs, ticks.instance)
    (home / "inbox").mkdir()
    (home / "inbox" / "CC-MAIN-new.warc.gz").write_bytes(b"\x1f\x8b\x08\x00")
    after = observe_warc_files(ticks.defs, ticks.instance)
    assert before.metadata["files"].value == 0 and after.metadata["files"].value == 1
    assert after.tags["dagster/data_version"] != before.tags["dagster/data_version"]
    profile = load_profile(default_profile_name())  # the one the Definitions were loaded with
    crawl = next(spec for spec in stage_specs(profile) if spec.asset == "raw_crawl")
    assert after.tags["dagster/data_version"] == external_fingerprint(stage_config(crawl, profile))  # raw_crawl's key

    ticks.at(DAY + MINUTE)
    assert ticks.requested() == DATA
    assert {"on_change", "any_deps_updated", "newly_updated"} <= true_labels(ticks.last["raw_crawl"])
    assert ticks.last["scaling_law_fit"].true_subset.is_empty  # training waits for the night

    for asset in ["raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus", "tokenizer", "data_mix"]:
        ticks.instance.report_runless_asset_event(dg.AssetMaterialization(asset))  # the data run lands
    ticks.at(DAY + 2 * MINUTE)
    assert ticks.requested() == set()
    assert ticks.night() == BELOW_DATA


def test_an_unchanged_listing_is_not_an_update(factory_defs):
    ticks, _ = factory_defs
    observe_warc_files(ticks.defs, ticks.instance)  # same (empty) inbox, observed again
    ticks.at(DAY + MINUTE)
    assert ticks.requested() == set()
