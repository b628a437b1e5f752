"""Every profile validates every stage section, and states only what differs from the defaults.

A profile key that restates its default is noise that hides what a profile changes (and would
silently pin the value if the default moved), so every key must differ from what leaving it out
gives. A nested section (``train: {...}``) replaces its field's default as a whole, so inside it
a key is compared with the nested config class's own default.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from factory.config import PROFILES_DIR, PROJECT_ROOT, Profile, RuntimeConfig, available_profiles, load_profile
from factory.runner import Runner
from factory.stages import ProfileError, post_training_rounds, stage_specs, validate_profile

PROFILES = available_profiles()


def _field(cls: type[BaseModel], key: str) -> tuple[str, Any]:
    for name, info in cls.model_fields.items():
        if key in (name, info.alias):
            return name, info
    raise KeyError(f"{cls.__name__} has no field {key!r}")


def restated_defaults(cls: type[BaseModel], section: dict[str, Any], where: str) -> list[str]:
    """Keys of ``section`` (validated by ``cls``) whose value is what leaving the key out gives."""
    config = cls(**section)
    found = []
    for key, raw in section.items():
        name, info = _field(cls, key)
        if info.is_required():
            continue
        value = getattr(config, name)
        if value == info.get_default(call_default_factory=True):
            found.append(f"{where}.{key}")
        elif isinstance(raw, dict) and isinstance(value, BaseModel):
            found += restated_defaults(type(value), raw, f"{where}.{key}")
    return found


def _raw(name: str) -> dict[str, Any]:
    return yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text()) or {}


@pytest.mark.parametrize("name", PROFILES)
def test_every_profile_validates(name):
    assert validate_profile(load_profile(name)) == []


def test_validation_lists_every_error_of_every_section():
    profile = Profile("bad", {
        "dedupd_docs": {"num_shards": 2},
        "base_checkpoint": {"seq_len": "long", "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "warmup": 3}},
        "code_expert": {"domain_weight": 1.5},
        "sft": {"rs_prompt": 4},
        "posttraining": {"rounds": 0},
        "typo_nobody_reads": {},
    })
    assert validate_profile(profile) == [
        "posttraining.rounds: Input should be greater than or equal to 1",
        "unknown section 'dedupd_docs' (did you mean 'deduped_docs'?)",
        "unknown section 'typo_nobody_reads' (no stage reads it)",
        "base_checkpoint.seq_len: Input should be a valid integer, unable to parse string as an integer",
        "unknown key 'base_checkpoint.train.warmup'",
        "code_expert.domain_weight: Input should be less than or equal to 1",
        "unknown key 'sft.rs_prompt'",
    ]


def test_a_runner_refuses_an_invalid_profile_before_anything_runs(tmp_path):
    profile = Profile("bad", {"runtime": {"home": str(tmp_path)}, "raw_crawl": {"max_pages": 4}})
    with pytest.raises(ProfileError, match="unknown key 'raw_crawl.max_pages'"):
        Runner(profile, log=lambda _: None)
    assert not any(tmp_path.iterdir())  # no store, no MLflow database, no Ray


@pytest.mark.parametrize("name", PROFILES)
def test_no_profile_key_restates_its_default(name):
    profile = load_profile(name)
    raw = _raw(name)
    found = restated_defaults(RuntimeConfig, raw.get("runtime") or {}, "runtime")
    if "rounds" in profile.sections.get("posttraining", {}):
        default_rounds = post_training_rounds(Profile("defaults", {}))
        if post_training_rounds(profile) == default_rounds:
            found.append("posttraining.rounds")
    for section, spec in {spec.config_section: spec for spec in stage_specs(profile)}.items():
        if section in profile.sections:
            found += restated_defaults(spec.load_config_class(), {**dict(spec.defaults), **profile.section(section)},
                                       section)
            # A value the stage table fixes for this asset (an expert's domain) is a default too.
            found += [f"{section}.{key}" for key, value in spec.defaults if profile.section(section).get(key) == value]
    assert not found, f"profile {name!r} restates defaults: {found}"


def test_the_checker_sees_restated_and_nested_defaults():
    from factory.pretrain.base import PretrainConfig

    default_train = PretrainConfig().train.model_dump()
    assert restated_defaults(PretrainConfig, {"seq_len": 128, "train": default_train}, "base") == [
        "base.seq_len", "base.train"]
    # Inside a nested section the nested class's defaults count: 10 is TrainConfig's log_every.
    nested = {"steps": 5, "batch_size": 4, "lr": 1e-3, "log_every": 10, "schedule": {"kind": "cosine"}}
    assert restated_defaults(PretrainConfig, {"train": nested}, "base") == [
        "base.train.log_every", "base.train.schedule"]
    changed = {**nested, "log_every": 5, "schedule": {"kind": "constant"}}
    assert restated_defaults(PretrainConfig, {"flavor": "nano", "train": changed}, "base") == []


def test_sections_name_paths_in_home_and_beside_the_checkout():
    demo = load_profile("demo")
    assert demo.section("raw_crawl")["inbox"] == f"{demo.home}/inbox"
    assert demo.section("llama_guard")["public_data_dir"] == f"{PROJECT_ROOT}/../shared/data/safety"
    assert (PROJECT_ROOT / "pyproject.toml").is_file()
