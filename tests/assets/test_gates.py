"""Release gates (factory.gates, assets/gates.py): each gate's pass and fail on manifests committed to
a temp store with the metadata the stages record, the artifact of the run being the one judged, and
a failed blocking gate keeping the downstream asset from running."""

import dagster as dg
import pytest
import yaml

from assets.artifacts import materialized_key
from assets.gates import build_gates, gate_check, judge_fp8, judge_guard, judge_round
from assets.resources import FactoryResource
from factory.config import load_profile
from factory.gates import GatesConfig, MissingMeasurement, accuracy_drop, previous_model
from factory.stages import validate_profile
from factory.store import ArtifactStore

GATES = GatesConfig()  # the defaults: z = 1 for rounds and FP8; guards F1 >= 0.7 / 0.75, FPR <= 0.3


def _commit(store, stage, metadata, inputs=None, salt=0):
    """A committed artifact of ``stage`` whose manifest holds ``metadata`` (``salt`` varies its key)."""
    def produce(out, work):
        (out / "weights.txt").write_text(f"{stage} {salt}")
        return metadata
    manifest, _ = store.build(stage, {"salt": salt}, inputs or {}, produce, code_version="v1")
    return manifest


def _dev(accuracy, n=200):
    return {"dev": {"n": n, "accuracy": accuracy, "mean_score": accuracy}}


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(tmp_path / "store")


def test_chain_of_previous_models():
    assert previous_model("sft_round_1", {}) is None  # the annealed checkpoint records no chat accuracy
    assert previous_model("dpo_round_1", {}) == "sft_round_1"
    assert previous_model("sft_round_3", {}) == "dpo_round_2"
    assert previous_model("chat_model", {"dpo_round_3": None, "tokenizer": None}) == "dpo_round_3"
    assert previous_model("llama_guard", {}) is None


def test_round_gate_passes_within_one_standard_error_and_fails_beyond(store):
    sft = _commit(store, "sft_round_1", _dev(0.60))
    within = _commit(store, "dpo_round_1", _dev(0.57), {"sft_round_1": sft})
    verdict = judge_round(within, store, GATES)
    # pooled p = (120 + 114) / 400 = 0.585; SE = sqrt(0.585 * 0.415 * (2 / 200)) = 0.0493
    assert verdict.passed
    assert verdict.metadata.items() >= {"reference_accuracy": 0.6, "accuracy": 0.57, "drop": 0.03,
                                     "standard_error": 0.0493, "margin": 0.0493, "previous": "sft_round_1"}.items()
    worse = _commit(store, "dpo_round_1", _dev(0.50), {"sft_round_1": sft}, salt=1)
    verdict = judge_round(worse, store, GATES)
    # pooled p = 220 / 400 = 0.55; SE = sqrt(0.55 * 0.45 * 0.01) = 0.0497 < drop 0.10
    assert not verdict.passed and verdict.metadata["margin"] == 0.0497 and verdict.metadata["drop"] == 0.1
    assert verdict.description == ("dpo_round_1 FAILS: dev accuracy 0.5 (n=200) vs sft_round_1 0.6 (n=200): "
                                   "drop 0.1, allowed 0.0497 (1.0 x SE 0.0497)")
    # A stricter profile (z = 0.5) fails the first one too: the margin is the profile's.
    assert not judge_round(within, store, GatesConfig(rounds_z=0.5)).passed


def test_round_gate_at_zero_accuracy_allows_no_drop():
    # Nothing right on either side: SE 0, no drop, pass; one hit lost out of 4: fail.
    assert accuracy_drop({"n": 4, "accuracy": 0.0}, {"n": 4, "accuracy": 0.0}, 1.0)["passed"]
    lost = accuracy_drop({"n": 4, "accuracy": 0.25}, {"n": 4, "accuracy": 0.0}, 1.0)
    assert not lost["passed"] and lost["standard_error"] == 0.2339  # sqrt(1/8 * 7/8 * 1/2)


def test_round_gate_reads_the_previous_model_the_artifact_was_built_from(store):
    sft = _commit(store, "sft_round_1", _dev(0.60))
    dpo = _commit(store, "dpo_round_1", _dev(0.58), {"sft_round_1": sft})
    _commit(store, "sft_round_1", _dev(0.95), salt=1)  # a newer sft_round_1 (latest ref), not dpo's input
    verdict = judge_round(dpo, store, GATES)
    assert verdict.passed and verdict.metadata["previous_key"] == sft.key
    assert verdict.metadata["reference_accuracy"] == 0.6


def test_an_artifact_without_a_dev_measurement_fails_loudly(store):
    sft = _commit(store, "sft_round_1", {"heldout": {"n": 200, "accuracy": 0.6}})  # built by older code
    dpo = _commit(store, "dpo_round_1", _dev(0.6), {"sft_round_1": sft})
    with pytest.raises(MissingMeasurement, match=f"sft_round_1/{sft.key} records no dev"):
        judge_round(dpo, store, GATES)


def _guard_metrics(f1, fpr):
    return {"precision": 0.8, "recall": 0.75, "f1": f1, "fpr": fpr, "positives": 60.0, "negatives": 100.0}


def test_guard_gates_on_dev_f1_and_fpr(store):
    good = _commit(store, "llama_guard", {"dev": _guard_metrics(0.82, 0.12), "held_out": _guard_metrics(0.1, 0.9)})
    verdict = judge_guard(good, store, GATES)
    assert verdict.passed  # reads dev, not the held-out (test) numbers beside it
    assert verdict.metadata.items() >= {"f1": 0.82, "fpr": 0.12, "min_f1": 0.7, "max_fpr": 0.3}.items()
    low_f1 = _commit(store, "llama_guard", {"dev": _guard_metrics(0.65, 0.12)}, salt=1)
    assert not judge_guard(low_f1, store, GATES).passed
    refuses = _commit(store, "llama_guard", {"dev": _guard_metrics(0.9, 0.35)}, salt=2)
    verdict = judge_guard(refuses, store, GATES)
    assert not verdict.passed and verdict.description.startswith("llama_guard FAILS: dev F1 0.9 (min 0.7), FPR 0.35")

    attacks = {"attack": _guard_metrics(0.8, 0.2), "accuracy": 0.8}
    assert judge_guard(_commit(store, "prompt_guard", {"dev": attacks}), store, GATES).passed
    strict = GatesConfig(prompt_guard={"min_f1": 0.85, "max_fpr": 0.3})
    assert not judge_guard(_commit(store, "prompt_guard", {"dev": attacks}), store, strict).passed


def _release(bf16, fp8, n=200):
    return {"hf_dtype": "bfloat16", "fp8": {"dev_accuracy": {"bfloat16": {"n": n, "accuracy": bf16, "mean_score": 0},
                                                             "fp8": {"n": n, "accuracy": fp8, "mean_score": 0}}}}


def test_fp8_gate_on_dev_accuracy_against_the_bundle(store):
    close = judge_fp8(_commit(store, "quantized_release", _release(0.60, 0.56)), store, GATES)
    assert close.passed and close.metadata["reference"] == "bfloat16" and close.metadata["drop"] == 0.04
    far = judge_fp8(_commit(store, "quantized_release", _release(0.60, 0.48), salt=1), store, GATES)
    assert not far.passed and far.metadata["margin"] == 0.0498  # pooled 0.54: sqrt(0.54 * 0.46 * 0.01)
    assert far.description.startswith("quantized_release FAILS: FP8 dev accuracy 0.48 vs bfloat16 0.6")


def test_gates_section_is_validated_and_known(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"gates": {"rounds_z": -1, "llama_guard": {"min_f1": 0.5}, "fp8": 1}}))
    errors = validate_profile(load_profile(str(path)))
    assert "gates.rounds_z: Input should be greater than or equal to 0" in errors
    assert "gates.llama_guard.max_fpr: Field required" in errors and "unknown key 'gates.fp8'" in errors
    path.write_text(yaml.safe_dump({"gates": {"rounds_z": 2.0}}))
    assert validate_profile(load_profile(str(path))) == []


# --- Dagster: the checks read the run's artifact and block what follows a failure ---------------------

def _profile_path(tmp_path, gates=None):
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump({"runtime": {"home": str(tmp_path / "home"),
                                                "artifact_root": str(tmp_path / "store")},
                                    **({"gates": gates} if gates else {})}))
    return str(path)


def _stand_ins(sft_key, dpo_key, ran):
    """dpo_round_1 reporting the artifact it 'built' (as assets/graph.py does), and a consumer."""
    @dg.asset(name="sft_round_1")
    def sft_round_1():
        return dg.MaterializeResult(metadata={"artifact_key": sft_key})

    @dg.asset(name="dpo_round_1", deps=["sft_round_1"])
    def dpo_round_1():
        return dg.MaterializeResult(metadata={"artifact_key": dpo_key})

    @dg.asset(name="chat_model", deps=["dpo_round_1"])
    def chat_model():
        ran.append("chat_model")

    return [sft_round_1, dpo_round_1, chat_model]


def _run(tmp_path, store, dpo_accuracy, ran, instance=None):
    sft = _commit(store, "sft_round_1", _dev(0.60))
    dpo = _commit(store, "dpo_round_1", _dev(dpo_accuracy), {"sft_round_1": sft})
    # A newer, unrelated dpo_round_1 moves the store's latest ref; the check must not read it.
    newer = _commit(store, "dpo_round_1", _dev(1.0 - dpo_accuracy), {"sft_round_1": sft}, salt=9)
    store.set_ref("dpo_round_1", newer)  # as the runner does after a build
    assert store.latest("dpo_round_1").key == newer.key != dpo.key
    check = gate_check("dpo_round_1", judge_round, "dev accuracy not worse than sft_round_1's")
    return dg.materialize([*_stand_ins(sft.key, dpo.key, ran), check], raise_on_error=False,
                          resources={"factory": FactoryResource(profile=_profile_path(tmp_path))},
                          instance=instance or dg.DagsterInstance.ephemeral())


def _evaluation(result):
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_failed_blocking_gate_keeps_the_downstream_asset_from_running(tmp_path, store):
    ran = []
    result = _run(tmp_path, store, dpo_accuracy=0.40, ran=ran)
    evaluation = _evaluation(result)
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["accuracy"].value == 0.4  # the run's artifact, not the newer one (0.6)
    assert evaluation.description.startswith("dpo_round_1 FAILS: dev accuracy 0.4 (n=200) vs sft_round_1 0.6")
    assert ran == [] and not result.success
    materialized = {e.asset_key.path[0] for e in result.get_asset_materialization_events()}
    assert materialized == {"sft_round_1", "dpo_round_1"}


def test_checks_read_their_runs_materialization_else_the_latest(tmp_path, store):
    instance = dg.DagsterInstance.ephemeral()
    result = _run(tmp_path, store, dpo_accuracy=0.58, ran=[], instance=instance)
    built = materialized_key(instance, result.run_id, "dpo_round_1")
    assert built == store.load("dpo_round_1", built).key and store.latest("dpo_round_1").key != built
    # A later materialization (another run's) leaves this run's answer alone and is what a
    # check-only run, which materialized nothing, reads.
    instance.report_runless_asset_event(dg.AssetMaterialization("dpo_round_1", metadata={"artifact_key": "k2"}))
    assert materialized_key(instance, result.run_id, "dpo_round_1") == built
    assert materialized_key(instance, "a-run-that-only-checks", "dpo_round_1") == "k2"
    with pytest.raises(FileNotFoundError, match="'chat_model' has no materialization"):
        materialized_key(dg.DagsterInstance.ephemeral(), result.run_id, "chat_model")


def test_passing_gate_lets_the_downstream_asset_run(tmp_path, store):
    ran = []
    result = _run(tmp_path, store, dpo_accuracy=0.58, ran=ran)
    evaluation = _evaluation(result)
    assert evaluation.passed and evaluation.metadata["accuracy"].value == 0.58  # not the newer 0.42
    assert ran == ["chat_model"] and result.success


def test_build_gates_names_one_blocking_check_per_gated_asset():
    checks = build_gates(load_profile("smoke"))
    keys = {key.name for c in checks for key in c.check_keys}
    assert keys == {"dpo_round_1_gate", "sft_round_2_gate", "dpo_round_2_gate", "chat_model_gate",
                    "llama_guard_gate", "prompt_guard_gate", "quantized_release_gate"}
    assert all(spec.blocking for c in checks for spec in c.check_specs)
