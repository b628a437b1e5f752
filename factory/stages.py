"""The recipe as a graph of stages: one entry per asset, in one place (docs/architecture.md, "The graph").

Each entry names the stage function (``module:function``), its config class, the upstream assets
it reads, its Dagster group, and the Ray job that runs it. Dagster assets, Ray job entrypoints, the
CLI and the tests all read this table, so the graph is declared once. Imports are lazy: loading
the table pulls in no torch, Ray or Dagster.

Post-training rounds are generated from the profile (``posttraining.rounds``): ``sft_round_k`` and
``dpo_round_k`` for k = 1..rounds, and from round 2 on ``preference_round_k`` and ``reward_round_k``
(``factory.post.round_assets``); ``chat_model`` averages the last round's DPO runs.

``validate_profile`` checks a whole profile against the table (every section, every key; plus the
``posttraining`` and ``gates`` sections, which shape the graph and judge it) so that a run refuses a
bad profile before its first stage, not when the bad section's stage comes up.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from factory.config import Profile
from factory.core.code_version import code_version
from factory.core.stage import StageConfig
from factory.gates import GatesConfig
from factory.post.round_assets import policy_key, preference_key, preference_keys, reward_key


@dataclass(frozen=True)
class StageSpec:
    asset: str
    group: str
    target: str  # "module:function" of the stage's run function
    config_class: str  # "module:Class" of its config
    inputs: tuple[str, ...]
    ray_job: str  # which ray_jobs entrypoint runs it: curate (corpus work) | train (anything with a model)
    description: str
    section: str = ""  # profile section holding the config; defaults to the asset key
    extra: tuple[tuple[str, Any], ...] = ()  # fixed keyword arguments (e.g. the round number)
    # Config values this asset's stage starts from, under its profile section: two assets that share
    # a config class differ here (the experts' domains), so a profile need not restate them.
    defaults: tuple[tuple[str, Any], ...] = ()

    @property
    def config_section(self) -> str:
        return self.section or self.asset

    @property
    def code_version(self) -> str:
        """Version of the code this stage runs: its function's and config's modules and their project
        imports (``factory.core.code_version``); the artifact key and the Dagster asset carry it."""
        return code_version(self.target, self.config_class)

    def load_function(self) -> Callable[..., dict[str, Any]]:
        return load_object(self.target)

    def load_config_class(self) -> type[StageConfig]:
        return load_object(self.config_class)


def load_object(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _spec(asset, group, target, config_class, inputs, ray_job, description, **kw) -> StageSpec:
    return StageSpec(asset, group, target, config_class, tuple(inputs), ray_job, description, **kw)


_CORE: list[StageSpec] = [
    _spec("raw_crawl", "data", "factory.data.crawl:run_raw_crawl", "factory.data.crawl:CrawlConfig", [], "curate",
          "WARC shards of the crawl: configured WARC paths plus the inbox, "
          "or the embedded sample crawl of real documents."),
    _spec("extracted_docs", "data", "factory.data.extract:run_extracted_docs", "factory.data.extract:ExtractConfig",
          ["raw_crawl"], "curate",
          "Main-content text of each HTML page (code, math and alt text kept, markdown stripped); "
          "URL dedup keeps the newest capture."),
    _spec("deduped_docs", "data", "factory.data.dedup:run_deduped_docs", "factory.data.dedup:DedupConfig",
          ["extracted_docs"], "curate", "Global MinHash-LSH near-duplicate removal, then CCNet-style line dedup."),
    _spec("filtered_corpus", "data", "factory.data.curate:run_filtered_corpus", "factory.data.curate:FilterConfig",
          ["deduped_docs"], "curate",
          "Heuristic filters, language ID, model-based quality scores, code/math routing and topic labels."),
    _spec("tokenizer", "data", "factory.data.tokenizer:run_tokenizer", "factory.data.tokenizer:TokenizerConfig",
          ["filtered_corpus"], "curate",
          "Byte-level BPE trained on the corpus with the Llama 3 special tokens and chat format."),
    _spec("data_mix", "data", "factory.data.mix:run_data_mix", "factory.data.mix:DataMixConfig",
          ["filtered_corpus", "tokenizer"], "train",
          "Topic downsampling and a mix chosen by small-model mix experiments; tokenized train/validation shards."),
    _spec("scaling_law_fit", "pretraining", "factory.scaling.isoflop:run_scaling_law_fit",
          "factory.scaling.isoflop:ScalingConfig", ["data_mix", "tokenizer"], "train",
          "IsoFLOP grid of small runs, compute-optimal size fit and a two-stage (FLOPs -> NLL -> accuracy) forecast."),
    _spec("base_checkpoint", "pretraining", "factory.pretrain.base:run_base_checkpoint",
          "factory.pretrain.base:PretrainConfig", ["data_mix", "tokenizer", "scaling_law_fit"], "train",
          "Initial pre-training: AdamW, linear warmup + cosine decay, batch-size ramp."),
    _spec("long_context_checkpoint", "pretraining", "factory.pretrain.long_context:run_long_context_checkpoint",
          "factory.pretrain.long_context:LongContextConfig", ["base_checkpoint", "data_mix", "tokenizer"], "train",
          "Context length raised in steps, each gated by short-context recovery and needle-in-a-haystack."),
    _spec("annealed_checkpoint", "pretraining", "factory.pretrain.anneal:run_annealed_checkpoint",
          "factory.pretrain.anneal:AnnealConfig", ["long_context_checkpoint", "data_mix", "tokenizer"], "train",
          "LR annealed linearly to 0 on a mix upsampling high-quality data."),
    _spec("code_expert", "pretraining", "factory.pretrain.experts:run_expert_checkpoint",
          "factory.pretrain.experts:ExpertConfig", ["base_checkpoint", "data_mix", "tokenizer"], "train",
          "Continued pre-training branched from the base run on a code-heavy mix.",
          defaults=(("domain", "code"), ("domain_weight", 0.85))),
    _spec("multilingual_expert", "pretraining", "factory.pretrain.experts:run_expert_checkpoint",
          "factory.pretrain.experts:ExpertConfig", ["base_checkpoint", "data_mix", "tokenizer"], "train",
          "Continued pre-training branched from the base run on a multilingual-heavy mix.",
          defaults=(("domain", "multilingual"), ("domain_weight", 0.9))),
    _spec("preference_data", "posttraining", "factory.post.preference:run_preference_data",
          "factory.post.preference:PreferenceConfig",
          ["annealed_checkpoint", "code_expert", "multilingual_expert", "tokenizer"], "train",
          "Responses from two models per verifiable prompt, ranked edited > chosen > rejected with a strength level."),
    _spec("reward_model", "posttraining", "factory.post.reward:run_reward_model", "factory.post.reward:RewardConfig",
          ["annealed_checkpoint", "preference_data", "tokenizer"], "train",
          "Reward model on the pre-trained checkpoint with a margin ranking loss."),
]


def _round_specs(rounds: int) -> list[StageSpec]:
    specs = []
    for k in range(1, rounds + 1):
        if k > 1:
            previous = [f"dpo_round_{k - 1}", f"sft_round_{k - 1}"]
            specs.append(_spec(
                preference_key(k), "posttraining", "factory.post.preference:run_preference_data",
                "factory.post.preference:PreferenceConfig",
                [*previous, "code_expert", "multilingual_expert", "tokenizer"], "train",
                f"Round {k}: fresh preferences from round {k - 1}'s DPO and SFT models (code and multilingual "
                "prompts: their experts), ranked edited > chosen > rejected.",
                section="preference_data", extra=(("round", k),)))
            specs.append(_spec(
                reward_key(k), "posttraining", "factory.post.reward:run_reward_model",
                "factory.post.reward:RewardConfig", ["annealed_checkpoint", *preference_keys(k), "tokenizer"], "train",
                f"Round {k}: the reward model retrained on every preference collected so far.",
                section="reward_model", extra=(("round", k),)))
        policy = [policy_key(k)] if k > 1 else []
        specs.append(_spec(
            f"sft_round_{k}", "posttraining", "factory.post.rounds:run_sft_round", "factory.post.rounds:SFTConfig",
            ["annealed_checkpoint", *policy, reward_key(k), "data_mix", "tokenizer"], "train",
            f"Round {k}: rejection sampling (K samples, best by RM) plus capability data and pre-training text, "
            "QC, SFT.",
            section="sft", extra=(("round", k),)))
        specs.append(_spec(
            f"dpo_round_{k}", "posttraining", "factory.post.rounds:run_dpo_round", "factory.post.rounds:DPOConfig",
            [f"sft_round_{k}", preference_key(k), "tokenizer"], "train",
            f"Round {k}: DPO on the round's fresh preferences and on-policy pairs, formatting tokens masked; "
            "several runs to average.",
            section="dpo", extra=(("round", k),)))
    return specs


def _tail_specs(rounds: int) -> list[StageSpec]:
    last = f"dpo_round_{rounds}"
    return [
        _spec("chat_model", "posttraining", "factory.post.averaging:run_chat_model",
              "factory.post.averaging:AverageConfig",
              [last, "tokenizer"], "train", "Average of the weights of the last round's DPO runs."),
        _spec("llama_guard", "safety", "factory.safety.guard:run_llama_guard", "factory.safety.guard:GuardConfig",
              ["annealed_checkpoint", "tokenizer"], "train",
              "Prompt/response safety classifier over the 13 hazard categories plus code-interpreter abuse."),
        _spec("prompt_guard", "safety", "factory.safety.prompt_guard:run_prompt_guard",
              "factory.safety.prompt_guard:PromptGuardConfig", [], "train",
              "Jailbreak / prompt-injection classifier on a small packaged encoder."),
        _spec("code_shield", "safety", "factory.safety.code_shield:run_code_shield",
              "factory.safety.code_shield:CodeShieldConfig", ["chat_model", "tokenizer"], "train",
              "Static analysis (bandit) of generated code: rules, thresholds and a scan of the chat model's code."),
        _spec("quantized_release", "release", "factory.release.bundle:run_quantized_release",
              "factory.release.bundle:ReleaseConfig",
              ["chat_model", "tokenizer", "llama_guard", "prompt_guard", "code_shield"],
              "curate", "HF Llama bundle, FP8 row-wise FFN weights (first/last layers kept), INT8 guard, model card."),
        _spec("eval_report", "release", "factory.release.report:run_eval_report", "factory.release.report:EvalConfig",
              ["quantized_release", "chat_model", "base_checkpoint", "long_context_checkpoint", "annealed_checkpoint",
               "code_expert", "multilingual_expert",
               *[f"{kind}_round_{k}" for k in range(1, rounds + 1) for kind in ("sft", "dpo")], reward_key(rounds),
               "llama_guard", "prompt_guard", "data_mix", "tokenizer"], "train",
              "Perplexity, experts vs base, needle-in-a-haystack, per-round task accuracy and RM preference, "
              "guard precision/recall, FP8 deltas."),
    ]


class PostTrainingConfig(StageConfig):
    """The ``posttraining`` section: the shape of the post-training part of the graph."""

    rounds: int = Field(2, ge=1, description="SFT + DPO rounds; chat_model averages the last round's DPO runs.")


class ProfileError(ValueError):
    """A profile that does not validate; the message lists every error."""


def post_training_rounds(profile: Profile) -> int:
    return PostTrainingConfig(**profile.section("posttraining")).rounds


def _graph(rounds: int) -> list[StageSpec]:
    return _CORE + _round_specs(rounds) + _tail_specs(rounds)


def _unknown_sections(profile: Profile, specs: list[StageSpec]) -> list[str]:
    known = {spec.config_section for spec in specs} | {"posttraining", "gates"}
    return [f"unknown section {name!r}" + _suggestion(name, known) for name in sorted(set(profile.sections) - known)]


def _unplaced_resources(profile: Profile, specs: list[StageSpec]) -> list[str]:
    known = {spec.config_section for spec in specs}
    unplaced = sorted(set(profile.runtime.resources) - known - {"default"})
    return [f"runtime.resources names no stage: {name}" + _suggestion(name, known) for name in unplaced]


def _suggestion(name: str, known: set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else " (no stage reads it)"


def stage_specs(profile: Profile) -> list[StageSpec]:
    """Every stage of the graph for this profile, in a topological order.

    Raises if the profile has a section no stage reads, or resources for no stage (a misspelt name
    would otherwise leave its stage on the defaults without a word)."""
    specs = _graph(post_training_rounds(profile))
    unknown = _unknown_sections(profile, specs) + _unplaced_resources(profile, specs)
    if unknown:
        raise ProfileError(f"profile {profile.name!r}: {'; '.join(unknown)}")
    return specs


def stage_config(spec: StageSpec, profile: Profile) -> StageConfig:
    """Validate the profile section of a stage, over the table's defaults for its asset, into its typed
    config (unknown keys raise)."""
    cls = spec.load_config_class()
    return cls(**{**dict(spec.defaults), **profile.section(spec.config_section)})


def with_stage_config(profile: Profile, spec: StageSpec, values: dict[str, Any]) -> Profile:
    """``profile`` with the section of ``spec`` replaced by ``values``, one run's own config of that stage
    (Dagster's run config, the profile's values by default: ``assets/launchpad.py``), validated by the
    stage's config class: raises ``ProfileError`` naming each unknown key or bad value, before anything runs.

    Replacing the section as a whole gives exactly the profile's config when ``values`` is that config's
    dump, so an unedited run keeps the profile's key. A section shared by several stages (``sft``, ``dpo``:
    every round) is replaced in the returned profile only: it configures the one materialization run with it.
    """
    edited = profile.with_section(spec.config_section, values)
    try:
        stage_config(spec, edited)
    except ValidationError as err:
        errors = config_errors(spec.config_section, err)
        raise ProfileError(f"run config of {spec.asset!r} is invalid:\n  " + "\n  ".join(errors)) from None
    return edited


def config_errors(section: str, err: ValidationError) -> list[str]:
    """One line per error of a section's validation, named by its dotted path (``base_checkpoint.train.foo``)."""
    lines = []
    for e in err.errors():
        path = ".".join([section, *(str(part) for part in e["loc"])])
        lines.append(f"unknown key {path!r}" if e["type"] == "extra_forbidden" else f"{path}: {e['msg']}")
    return lines


def validate_profile(profile: Profile) -> list[str]:
    """Every error of a profile's sections, found before anything runs: a section no stage reads
    (a misspelt asset), and each section validated by its config class (unknown keys, wrong
    values). Empty when the profile is valid.

    The sections the graph reads do not depend on the number of rounds (every round reads ``sft``
    and ``dpo``), so a bad ``posttraining`` section does not hide the other sections' errors.
    Each stage section is validated once, however many stages share it."""
    try:
        rounds = post_training_rounds(profile)
        errors = []
    except ValidationError as err:
        rounds, errors = 1, config_errors("posttraining", err)
    specs = _graph(rounds)
    errors += _unknown_sections(profile, specs)
    try:
        GatesConfig(**profile.section("gates"))
    except ValidationError as err:
        errors += config_errors("gates", err)
    for section, spec in {spec.config_section: spec for spec in specs}.items():
        try:
            stage_config(spec, profile)
        except ValidationError as err:
            errors += config_errors(section, err)
    return errors


def check_profile(profile: Profile) -> None:
    """Raise ``ProfileError`` listing every error of ``validate_profile`` (before a run starts)."""
    errors = validate_profile(profile)
    if errors:
        raise ProfileError(f"profile {profile.name!r} is invalid:\n  " + "\n  ".join(errors))
