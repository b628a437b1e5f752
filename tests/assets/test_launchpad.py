"""Launchpad config: each asset's Dagster config is its stage config with the profile's values as defaults;
an edited run config re-keys the asset's artifact, an unedited one keeps the profile's key."""

import dagster as dg
import pytest

from assets.graph import build_assets
from assets.resources import FactoryResource
from factory.config import load_profile
from factory.runner import Runner
from factory.stages import ProfileError, stage_config, stage_specs, with_stage_config
from factory.store import ArtifactStore, stage_key


def _job(profile):
    """The global asset job of the profile's assets, as Dagster resolves run configs against it."""
    defs = dg.Definitions(assets=build_assets(profile), resources={"factory": FactoryResource(profile=profile.name)})
    return defs.resolve_implicit_global_asset_job_def()


def _fields(profile, asset: str) -> dict[str, dg.Field]:
    """The top-level fields of an asset's config schema, as the Launchpad shows them."""
    assets = {a.key.path[0]: a for a in build_assets(profile)}
    return assets[asset].op.config_schema.config_type.fields


def _asset_config(job, asset: str, run_config: dict) -> dict:
    """What the asset's body receives as ``context.op_config``: the run config, defaults filled in by Dagster."""
    return dg.validate_run_config(job, {"ops": {asset: {"config": run_config}}})["ops"][asset]["config"]


@pytest.mark.parametrize("name", ["smoke", "demo", "cluster"])
def test_the_launchpad_defaults_are_the_profiles_stage_configs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile(name)
    job = _job(profile)
    filled = dg.validate_run_config(job, {})["ops"]  # an untouched Launchpad
    for spec in stage_specs(profile):
        expected = stage_config(spec, profile)
        assert stage_config(spec, with_stage_config(profile, spec, filled[spec.asset]["config"])) == expected
    inbox = {"smoke": "{home}/inbox", "demo": "{home}/inbox", "cluster": ""}[name]  # as the profile writes it
    assert filled["raw_crawl"]["config"]["inbox"] == inbox.replace("{home}", str(tmp_path))
    steps = _fields(profile, "base_checkpoint")["train"].config_type.fields["steps"]
    assert steps.default_value == {"smoke": 30, "demo": 600, "cluster": 1_200_000}[name]
    assert steps.description == "Optimizer steps of the run."


def test_launchpad_types_follow_the_config_classes(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile("smoke")
    size_from = _fields(profile, "base_checkpoint")["size_from"].config_type
    assert [v.config_value for v in size_from.enum_values] == ["config", "scaling_law_fit"]
    ngrams = _fields(profile, "filtered_corpus")["heuristics"].config_type.fields["max_dup_ngram_frac"]
    assert ngrams.default_value[5] == 0.35  # int keys, as the config class has them (JSON would give "5")
    checkpoint = _fields(profile, "base_checkpoint")["train"].config_type.fields["checkpoint"].config_type.fields
    assert set(checkpoint) == {"every", "keep_last", "async"}  # the alias, as profiles and dumps name it
    element = _fields(profile, "dpo_round_1")["runs"].config_type.inner_type.fields
    assert element["seed"].is_required and element["beta"].is_required  # no class default inside a list


def _runner_with_fake_inputs(profile, spec):
    """A runner of ``profile`` whose store holds one tiny artifact per input of ``spec`` (refs set)."""
    runner = Runner(profile, log=lambda _: None)
    for name in spec.inputs:
        def produce(out, work, name=name):
            (out / "f.txt").write_text(name)
            return {}

        manifest, _ = runner.store.build(name, {}, {}, produce, code_version="v1")
        runner.store.set_ref(name, manifest)
    return runner


def _key(runner, asset):
    spec = runner.specs[asset]
    return stage_key(asset, runner.key_config(spec), runner.upstream(spec), code_version=spec.code_version)


def test_edited_steps_give_a_new_key_and_the_default_the_profiles(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile("smoke")
    job = _job(profile)
    spec = {s.asset: s for s in stage_specs(profile)}["base_checkpoint"]
    profile_key = _key(_runner_with_fake_inputs(profile, spec), "base_checkpoint")

    default = with_stage_config(profile, spec, _asset_config(job, "base_checkpoint", {}))
    edited = with_stage_config(profile, spec, _asset_config(job, "base_checkpoint", {"train": {"steps": 31}}))
    default_key, edited_key = _key(Runner(default, log=lambda _: None), "base_checkpoint"), \
        _key(Runner(edited, log=lambda _: None), "base_checkpoint")
    print(f"base_checkpoint keys: profile {profile_key}, Launchpad default {default_key}, steps 31 {edited_key}")
    assert default_key == profile_key
    assert edited_key != profile_key
    train = stage_config(spec, edited).train
    assert (train.steps, train.batch_size, train.schedule.warmup_steps) == (31, 8, 3)  # the rest: the profile's


def test_an_unknown_key_or_bad_value_is_refused_by_name(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile("smoke")
    job = _job(profile)
    with pytest.raises(dg.DagsterInvalidConfigError, match='"stepz"'):
        _asset_config(job, "base_checkpoint", {"train": {"stepz": 31}})

    spec = {s.asset: s for s in stage_specs(profile)}["base_checkpoint"]
    values = stage_config(spec, profile).model_dump(mode="json")
    with pytest.raises(ProfileError, match="unknown key 'base_checkpoint.train.stepz'"):
        with_stage_config(profile, spec, {**values, "train": {**values["train"], "stepz": 31}})
    short_betas = {**values["train"], "optimizer": {**values["train"]["optimizer"], "betas": [0.9]}}
    with pytest.raises(ProfileError, match=r"run config of 'base_checkpoint' is invalid:\n  "
                                           r"base_checkpoint.train.optimizer.betas.1: Field required"):
        with_stage_config(profile, spec, {**values, "train": short_betas})


def test_a_shared_sections_run_config_configures_that_materialization_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    profile = load_profile("smoke")
    specs = {s.asset: s for s in stage_specs(profile)}
    values = stage_config(specs["sft_round_1"], profile).model_dump(mode="json")
    edited = with_stage_config(profile, specs["sft_round_1"], {**values, "rs_samples": 3})
    assert stage_config(specs["sft_round_1"], edited).rs_samples == 3
    assert stage_config(specs["sft_round_2"], profile).rs_samples == 2  # the profile itself is unchanged
    assert profile.sections["sft"]["rs_samples"] == 2


@pytest.mark.slow  # the embedded Ray and two smoke crawls through Dagster: 16-51 s on the shared 2-core host
def test_dagster_materializes_the_profiles_config_and_an_edited_one(tmp_path, monkeypatch):
    import ray

    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI, which profiles prefer: set here, undone after the test.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    profile = load_profile("smoke")
    crawl = {a.key.path[0]: a for a in build_assets(profile)}["raw_crawl"]
    resources = {"factory": FactoryResource(profile="smoke")}
    try:
        default = dg.materialize([crawl], resources=resources)
        edited = dg.materialize([crawl], resources=resources,
                                run_config={"ops": {"raw_crawl": {"config": {"max_pages_per_source": 3}}}})
    finally:
        ray.shutdown()
    meta = [r.asset_materializations_for_node("raw_crawl")[0].metadata for r in (default, edited)]
    keys = [m["artifact_key"].value for m in meta]
    records = [m["records"].value for m in meta]
    print(f"raw_crawl through Dagster: default {keys[0]} ({records[0]} records), "
          f"max_pages_per_source 3 {keys[1]} ({records[1]} records)")
    assert keys[0] == _key(Runner(profile, log=lambda _: None), "raw_crawl")  # the profile's own key
    assert keys[1] != keys[0] and records[1] < records[0]
    assert [m["reused"].value for m in meta] == [False, False]
    store = ArtifactStore(tmp_path / "artifacts")
    built = [store.find("raw_crawl", key) for key in keys]
    assert [m.config["config"]["max_pages_per_source"] for m in built] == [4, 3]
    assert all(store.verify(m) == [] for m in built)
    assert store.latest("raw_crawl").key == keys[1]  # the ref follows the last materialization


def test_a_field_type_without_a_launchpad_type_is_refused_by_path():
    from assets.launchpad import _fields
    from factory.core.stage import StageConfig

    class Odd(StageConfig):
        shards: set[int] = {1}

    with pytest.raises(TypeError, match=r"^odd\.shards: no Launchpad config type for set\[int\]"):
        _fields(Odd, {"shards": [1]}, "odd")
