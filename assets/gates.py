"""Blocking release gates as Dagster asset checks (the verdicts are ``factory.gates``').

One check per gated asset, each reading the artifact its asset's materialization produced
(``assets/artifacts.py``) and the profile's ``gates`` thresholds:
- ``sft_round_k`` (k >= 2), ``dpo_round_k``, ``chat_model``: dev task accuracy not worse than the
  model before it in the post-training chain (the input it was built after);
- ``llama_guard``, ``prompt_guard``: dev F1 and FPR within their thresholds;
- ``quantized_release``: FP8 dev accuracy not worse than the bundle's.
Blocking, severity ERROR: a failed gate keeps every downstream asset of the run from running, so
``quantized_release`` is built only from gated models and ``eval_report`` only after the FP8 gate.
"""


from collections.abc import Callable

import dagster as dg

from assets.artifacts import checked_manifest
from assets.resources import FactoryResource
from factory.config import Profile
from factory.gates import GatesConfig, Verdict, fp8_gate, gates_config, guard_gate, previous_model, round_gate
from factory.stages import stage_specs
from factory.store import ArtifactStore, Manifest, open_store

Judge = Callable[[Manifest, ArtifactStore, GatesConfig], Verdict]


def judge_round(manifest: Manifest, store: ArtifactStore, gates: GatesConfig) -> Verdict:
    """The round gate against the exact previous model this artifact was built after (its input)."""
    previous = previous_model(manifest.stage, manifest.inputs)
    ref = manifest.inputs[previous]
    return round_gate(manifest, store.load(ref["stage"], ref["key"]), gates.rounds_z)


def judge_guard(manifest: Manifest, store: ArtifactStore, gates: GatesConfig) -> Verdict:
    return guard_gate(manifest, getattr(gates, manifest.stage))


def judge_fp8(manifest: Manifest, store: ArtifactStore, gates: GatesConfig) -> Verdict:
    return fp8_gate(manifest, gates.fp8_z)


def result_of(verdict: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=verdict.passed, severity=dg.AssetCheckSeverity.ERROR,
                               description=verdict.description, metadata=verdict.metadata)


def gate_check(asset: str, judge: Judge, description: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=f"{asset}_gate", blocking=True, description=description)
    def _check(context: dg.AssetCheckExecutionContext, factory: FactoryResource) -> dg.AssetCheckResult:
        profile = factory.load()
        store = open_store(profile)
        verdict = judge(checked_manifest(context, store, asset), store, gates_config(profile))
        (context.log.info if verdict.passed else context.log.error)(verdict.description)
        return result_of(verdict)

    return _check


def build_gates(profile: Profile) -> list[dg.AssetChecksDefinition]:
    checks = []
    for spec in stage_specs(profile):
        inputs = dict.fromkeys(spec.inputs)
        if previous_model(spec.asset, inputs) is not None:
            checks.append(gate_check(spec.asset, judge_round,
                                     f"Dev task accuracy not worse than {previous_model(spec.asset, inputs)}'s "
                                     "beyond gates.rounds_z standard errors."))
    checks += [gate_check(name, judge_guard, f"Dev F1 and FPR within gates.{name}.") for name in ("llama_guard",
                                                                                                  "prompt_guard")]
    checks.append(gate_check("quantized_release", judge_fp8,
                             "FP8 dev task accuracy not worse than the bundle's beyond gates.fp8_z standard errors."))
    return checks
