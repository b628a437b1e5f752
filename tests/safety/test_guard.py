from pathlib import Path

import pytest
import torch

from factory.core.stage import StageContext
from factory.eval.guard_eval import binary_metrics
from factory.model import checkpoint_io
from factory.model.chat_format import load_chat_format
from factory.safety.guard import (
    LABELS,
    GuardConfig,
    LlamaGuard,
    encode_guard_prompt,
    evaluate,
    label_vector,
    read_held_out,
    run_llama_guard,
)
from factory.safety.seed_prompts import GuardExample

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "safety"


def test_labels_are_unsafe_flag_then_fourteen_categories():
    assert LABELS[0] == "unsafe" and len(LABELS) == 15
    e = GuardExample("p", None, True, ("S3",), "unsafe_prompt")
    assert label_vector(e) == [1.0, 0, 0, 1.0] + [0.0] * 11


def test_prompt_keeps_instruction_and_cuts_long_conversations(tokenizer_dir):
    chat = load_chat_format(tokenizer_dir)
    short = encode_guard_prompt(chat, "How do I bake bread?", None, 512, with_policy=False)
    assert short[0] == chat.bos_id and short[-len(chat.encode_header("assistant")):] == chat.encode_header("assistant")
    long = encode_guard_prompt(chat, "word " * 400, "reply " * 400, 200, with_policy=False)
    assert len(long) == 200
    assert long[-len(chat.encode_header("assistant")):] == chat.encode_header("assistant")
    assert "Agent" in chat.decode(long[:40]) and "Agent" not in chat.decode(short)
    with_policy = encode_guard_prompt(chat, "How do I bake bread?", None, 1024, with_policy=True)
    assert "Code Interpreter Abuse" in chat.decode(with_policy)
    assert "Code Interpreter Abuse" not in chat.decode(encode_guard_prompt(chat, "x", None, 1024, with_policy=False))


def _train(tmp_path, tokenizer_dir, lm_dir, steps, per_category, responses) -> tuple[dict, Path]:
    cfg = GuardConfig(per_category=per_category, responses_per_category=responses, max_len=256, include_policy=False,
                      train={"steps": steps, "batch_size": 16, "lr": 5e-3, "schedule": {"warmup_steps": 5},
                             "log_every": 20})
    out = tmp_path / "guard"
    meta = run_llama_guard(cfg, {"annealed_checkpoint": lm_dir, "tokenizer": tokenizer_dir}, out,
                           StageContext(log=lambda m: None))
    return meta, out


@pytest.mark.slow
def test_stage_writes_a_loadable_guard(tmp_path, tokenizer_dir, lm_dir):
    meta, out = _train(tmp_path, tokenizer_dir, lm_dir, steps=2, per_category=2, responses=0)
    extra = checkpoint_io.read_meta(out)["extra"]
    assert extra["labels"] == list(LABELS) and extra["threshold"] == 0.5
    guard = LlamaGuard.load(out)
    verdicts = guard.classify(["How do I bake bread?", "x"], ["Sure.", None])
    assert [set(v) for v in verdicts] == [{"unsafe", "p_unsafe", "categories"}] * 2
    held = read_held_out(out)
    assert len(held) == meta["held_out_examples"] > 0
    again = evaluate(guard, held)
    assert {k: again[k] for k in ("precision", "recall", "f1", "fpr")} == \
        {k: meta["held_out"][k] for k in ("precision", "recall", "f1", "fpr")}
    # the INT8 path: other weights of the same scorer swap in, keeping tokenizer and threshold
    other = LlamaGuard.load(out, model=checkpoint_io.load_model(out))
    assert torch.allclose(torch.tensor(other.probabilities(["x"])), torch.tensor(guard.probabilities(["x"])))


@pytest.mark.slow
def test_guard_training_beats_chance_on_the_seed_set(tmp_path, tokenizer_dir, lm_dir):
    # An untrained debug backbone: everything the guard knows comes from the fine-tune.
    meta, out = _train(tmp_path, tokenizer_dir, lm_dir, steps=120, per_category=8, responses=0)
    fit, held = meta["train_fit"], meta["held_out"]
    # Chance on a balanced set: flagging at random gives F1 ~0.5 at FPR ~0.5; flagging all, FPR 1.
    # (Measured here: train F1 1.0 / FPR 0.0, held-out F1 0.79 / FPR 0.30.)
    assert fit["f1"] > 0.8 and fit["fpr"] < 0.2, fit
    assert held["f1"] > 0.6 and held["fpr"] < 0.5, held


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.exists(), reason="../shared/data/safety not present")
def test_quick_precision_recall_on_public_prompt_sets(tmp_path, tokenizer_dir, lm_dir):
    from factory.eval.guard_eval import read_labelled_jsonl

    rows = read_labelled_jsonl([SHARED / "openai_moderation.jsonl", SHARED / "cse_mitre_frr.jsonl"],
                               trusted_mappings=["exact"])
    rows = rows[:: max(1, len(rows) // 60)]
    assert {r["label_safe"] for r in rows} == {True, False}
    _, out = _train(tmp_path, tokenizer_dir, lm_dir, steps=2, per_category=2, responses=0)
    guard = LlamaGuard.load(out)
    verdicts = guard.classify([r["text"] for r in rows])
    m = binary_metrics([not r["label_safe"] for r in rows], [v["unsafe"] for v in verdicts])
    assert m["positives"] > 0 and m["negatives"] > 0
    assert all(0.0 <= m[k] <= 1.0 for k in ("precision", "recall", "f1", "fpr"))
