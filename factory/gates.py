"""Release gates: the verdicts that decide whether a model artifact may flow on to the release
(recipe: evaluation before release; the project's rule that gates read the ``dev`` split only).

Each gate reads the metadata a stage recorded in its manifest, never the test split the report reads:
- post-training rounds: a model's dev task accuracy may not fall below the model before it in the
  chain (``sft_round_1 -> dpo_round_1 -> sft_round_2 -> ... -> dpo_round_N -> chat_model``) by
  more than ``rounds_z`` standard errors of a pooled two-proportion test on the two dev sets;
- guards: the dev F1 of the unsafe flag (Llama Guard) or of attack detection (Prompt Guard) at
  least ``min_f1`` and its false-positive rate at most ``max_fpr``;
- FP8: the dev task accuracy of the FP8 weights (FP8 activations) may not fall below the bundle's
  (``hf_dtype`` weights) by more than ``fp8_z`` standard errors, the same test.

The thresholds are the profile's ``gates`` section (``GatesConfig``): they decide, they do not build,
so they are no part of any artifact key; changing one re-judges the same artifacts. Dagster runs
these as blocking asset checks (``assets/gates.py``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from factory.config import Profile
from factory.core.stage import StageConfig
from factory.store import Manifest


class GuardGate(StageConfig):
    """Dev-split thresholds of one guard's detection metrics."""

    min_f1: float = Field(ge=0.0, le=1.0, description="Lowest dev F1 the guard may release with.")
    max_fpr: float = Field(ge=0.0, le=1.0, description="Highest dev false-positive rate (false refusals) it may have.")


class GatesConfig(StageConfig):
    """The ``gates`` section: thresholds of the release gates (no part of any artifact key)."""

    rounds_z: float = Field(
        1.0, ge=0.0, description="A post-training model fails when its dev accuracy is below the previous model's by "
        "more than this many standard errors (pooled two-proportion test).")
    fp8_z: float = Field(
        1.0, ge=0.0, description="The FP8 release fails when its dev accuracy is below the bundle's by more than this "
        "many standard errors (the same test).")
    llama_guard: GuardGate = Field(GuardGate(min_f1=0.7, max_fpr=0.3), description="Llama Guard's unsafe flag on dev.")
    prompt_guard: GuardGate = Field(
        GuardGate(min_f1=0.75, max_fpr=0.3), description="Prompt Guard's attack detection on dev.")


def gates_config(profile: Profile) -> GatesConfig:
    return GatesConfig(**profile.section("gates"))


@dataclass(frozen=True)
class Verdict:
    passed: bool
    description: str  # says which artifact, which numbers and which threshold
    metadata: dict[str, Any] = field(default_factory=dict)


class MissingMeasurement(ValueError):
    """An artifact whose manifest lacks the dev measurement its gate reads (built by older code)."""


def _dig(manifest: Manifest, *path: str) -> Any:
    value: Any = manifest.metadata
    for part in path:
        if not isinstance(value, dict) or part not in value:
            raise MissingMeasurement(f"{manifest.stage}/{manifest.key} records no {'.'.join(path)}")
        value = value[part]
    return value


def previous_model(asset: str, inputs: dict[str, Any]) -> str | None:
    """The model before ``asset`` in the post-training chain, one of its inputs; None for the first
    (``sft_round_1``: the annealed checkpoint records no chat accuracy) or a non-chain asset."""
    if m := re.fullmatch(r"sft_round_(\d+)", asset):
        k = int(m.group(1))
        return f"dpo_round_{k - 1}" if k > 1 else None
    if m := re.fullmatch(r"dpo_round_(\d+)", asset):
        return f"sft_round_{m.group(1)}"
    if asset == "chat_model":
        (last,) = [name for name in inputs if name.startswith("dpo_round_")]
        return last
    return None


def accuracy_drop(reference: dict[str, Any], candidate: dict[str, Any], z: float) -> dict[str, Any]:
    """How far ``candidate``'s accuracy fell below ``reference``'s and the margin the test allows.

    Both are ``{"n", "accuracy"}`` of a task evaluation. Margin = z * sqrt(p(1-p)(1/n1 + 1/n2)) with
    p the pooled accuracy: the standard error of the difference of two binomial proportions under the
    hypothesis that both models are equally accurate. (The gated models answer the same dev prompts,
    so a paired test would be tighter; the manifests keep counts, not per-prompt answers.)"""
    n1, n2 = int(reference["n"]), int(candidate["n"])
    if n1 < 1 or n2 < 1:
        raise MissingMeasurement(f"an evaluation over no prompts: n = {n1}, {n2}")
    hits1, hits2 = round(reference["accuracy"] * n1), round(candidate["accuracy"] * n2)
    pooled = (hits1 + hits2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    drop = hits1 / n1 - hits2 / n2
    return {"reference_accuracy": round(hits1 / n1, 4), "accuracy": round(hits2 / n2, 4),
            "reference_n": n1, "n": n2, "drop": round(drop, 4), "standard_error": round(se, 4),
            "z": z, "margin": round(z * se, 4), "passed": drop <= z * se + 1e-12}


def round_gate(current: Manifest, previous: Manifest, z: float) -> Verdict:
    """``current``'s dev accuracy is not worse than ``previous``'s beyond ``z`` standard errors."""
    d = accuracy_drop(_dig(previous, "dev"), _dig(current, "dev"), z)
    word = "passes" if d["passed"] else "FAILS"
    text = (f"{current.stage} {word}: dev accuracy {d['accuracy']} (n={d['n']}) vs {previous.stage} "
            f"{d['reference_accuracy']} (n={d['reference_n']}): drop {d['drop']}, allowed {d['margin']} "
            f"({z} x SE {d['standard_error']})")
    return Verdict(d["passed"], text, {**d, "previous": previous.stage, "previous_key": previous.key,
                                       "key": current.key})


GUARD_METRICS = {"llama_guard": ("dev",), "prompt_guard": ("dev", "attack")}  # where each stage records dev P/R/F1/FPR


def guard_gate(manifest: Manifest, gate: GuardGate) -> Verdict:
    """The guard's dev F1 and FPR against the profile's thresholds."""
    metrics = _dig(manifest, *GUARD_METRICS[manifest.stage])
    f1, fpr = metrics["f1"], metrics["fpr"]
    passed = f1 >= gate.min_f1 and fpr <= gate.max_fpr
    text = (f"{manifest.stage} {'passes' if passed else 'FAILS'}: dev F1 {f1} (min {gate.min_f1}), "
            f"FPR {fpr} (max {gate.max_fpr}), precision {metrics['precision']}, recall {metrics['recall']}, "
            f"{int(metrics['positives'])} positive / {int(metrics['negatives'])} negative dev examples")
    return Verdict(passed, text, {"f1": f1, "fpr": fpr, "min_f1": gate.min_f1, "max_fpr": gate.max_fpr,
                                  "precision": metrics["precision"], "recall": metrics["recall"],
                                  "positives": metrics["positives"], "negatives": metrics["negatives"],
                                  "key": manifest.key})


def fp8_gate(manifest: Manifest, z: float) -> Verdict:
    """The FP8 weights' dev accuracy is not worse than the bundle's beyond ``z`` standard errors."""
    reference = _dig(manifest, "hf_dtype")
    d = accuracy_drop(_dig(manifest, "fp8", "dev_accuracy", reference), _dig(manifest, "fp8", "dev_accuracy", "fp8"), z)
    text = (f"{manifest.stage} {'passes' if d['passed'] else 'FAILS'}: FP8 dev accuracy {d['accuracy']} vs "
            f"{reference} {d['reference_accuracy']} (n={d['n']}): drop {d['drop']}, allowed {d['margin']} "
            f"({z} x SE {d['standard_error']})")
    return Verdict(d["passed"], text, {**d, "reference": reference, "key": manifest.key})
