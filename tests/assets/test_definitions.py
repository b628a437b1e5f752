"""The Dagster Definitions load, hold every asset key, the observed WARC files, the blocking checks and the
automation sensor."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from factory.config import available_profiles, load_profile
from factory.stages import stage_config, stage_specs

ROOT = Path(__file__).resolve().parents[2]
KEYS = {
    "raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus", "tokenizer", "data_mix", "scaling_law_fit",
    "base_checkpoint", "long_context_checkpoint", "annealed_checkpoint", "code_expert", "multilingual_expert",
    "preference_data", "reward_model", "sft_round_1", "dpo_round_1", "preference_round_2", "reward_round_2",
    "sft_round_2", "dpo_round_2", "chat_model", "llama_guard", "prompt_guard", "code_shield", "quantized_release",
    "eval_report",
}


def test_definitions_hold_the_whole_graph():
    from assets.definitions import defs

    graph = defs.resolve_asset_graph()
    keys = {k.path[0] for k in graph.get_all_asset_keys()}
    assert keys == KEYS | {"warc_files"}
    assert graph.get(dg.AssetKey("warc_files")).is_observable
    assert graph.get(dg.AssetKey("raw_crawl")).parent_keys == {dg.AssetKey("warc_files")}
    checks = {k.name for k in graph.asset_check_keys}
    assert checks == {"extracted_docs_expectations", "deduped_docs_expectations", "filtered_corpus_expectations",
                      "preference_data_expectations", "preference_round_2_expectations",
                      "dpo_round_1_gate", "sft_round_2_gate", "dpo_round_2_gate",
                      "chat_model_gate", "llama_guard_gate", "prompt_guard_gate", "quantized_release_gate"}
    assert all(graph.get_check_spec(k).blocking for k in graph.asset_check_keys)
    sensors = defs.get_repository_def().sensor_defs  # ours only: no default automation sensor beside it
    assert [s.name for s in sensors] == ["factory_automation"]
    assert sensors[0].asset_selection.resolve(graph) == graph.get_all_asset_keys()
    conditions = {k.path[0]: graph.get(k).automation_condition.get_label() for k in graph.get_all_asset_keys()}
    assert {k for k, label in conditions.items() if label == "on_change"} == {
        "raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus", "tokenizer", "data_mix"}
    assert {k for k, label in conditions.items() if label == "nightly(0 3 * * *)"} == KEYS - {
        "raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus", "tokenizer", "data_mix"}
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    assert groups == {"data", "pretraining", "posttraining", "safety", "release"}


def test_each_asset_carries_its_stages_code_version():
    from assets.definitions import defs
    from assets.resources import default_profile_name

    graph = defs.resolve_asset_graph()
    versions = {k.path[0]: graph.get(k).code_version for k in graph.materializable_asset_keys}
    assert versions == {spec.asset: spec.code_version for spec in stage_specs(load_profile(default_profile_name()))}
    assert versions["raw_crawl"] != versions["base_checkpoint"]  # per stage, not one hash of the tree


def test_every_profile_validates_every_stage_config():
    assert {"smoke", "demo", "cluster"} <= set(available_profiles())
    for name in available_profiles():
        profile = load_profile(name)
        for spec in stage_specs(profile):
            stage_config(spec, profile)


def test_dagster_cli_lists_every_asset():
    proc = subprocess.run([sys.executable, "-m", "dagster", "asset", "list", "-m", "assets.definitions"], cwd=ROOT,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert KEYS <= set(proc.stdout.split())


def test_definitions_refuse_an_invalid_profile(tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text("dedupd_docs: {num_shards: 2}\nraw_crawl: {max_pages: 4}\n")
    proc = subprocess.run([sys.executable, "-c", "import assets.definitions"], cwd=ROOT, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "FACTORY_PROFILE": str(bad)})
    assert proc.returncode != 0
    assert "unknown section 'dedupd_docs' (did you mean 'deduped_docs'?)" in proc.stderr
    assert "unknown key 'raw_crawl.max_pages'" in proc.stderr
