"""The report assembles from tiny real artifacts: a BPE tokenizer, token shards, debug-flavor LMs
for every checkpoint, a trained guard and Prompt Guard head, and FP8 / INT8 quantized folders."""

import json

import numpy as np
import pytest
import torch

from factory.core.stage import StageContext
from factory.data.tokenizer import save_tokenizer, train_bpe
from factory.model import checkpoint_io
from factory.model.flavors import model_args
from factory.model.hf import export_hf
from factory.model.llama import Transformer
from factory.quant.fp8 import quantize_fp8
from factory.quant.int8 import quantize_int8
from factory.release.report import (
    EvalConfig,
    _detection_row,
    _rounds,
    rm_round_preference_section,
    run_eval_report,
)
from factory.safety.guard import GuardConfig, run_llama_guard
from factory.safety.prompt_guard import PromptGuardConfig, run_prompt_guard
from factory.safety.seed_prompts import guard_examples
from factory.train.token_shards import encode_documents, save_stream

DOCS = [f"Document {i}: the river flows past {i % 7} mills and {i % 5} bridges before the sea." for i in range(200)]
CODE = [f"def mills_{i}(x):\n    return x * {i % 7} + {i % 5}\n" for i in range(100)]


def test_rounds_in_recipe_order():
    inputs = dict.fromkeys(("dpo_round_2", "sft_round_1", "chat_model", "sft_round_2", "dpo_round_1", "sft_round_10"))
    assert _rounds(inputs) == ["sft_round_1", "dpo_round_1", "sft_round_2", "dpo_round_2", "sft_round_10"]


@pytest.mark.slow
def test_report_from_tiny_real_artifacts(tmp_path):
    quiet = StageContext(log=lambda m: None)
    tok_dir = tmp_path / "tokenizer"
    tok = train_bpe(DOCS + CODE + [e.text for e in guard_examples(4, 2)], 768, num_special_tokens=32, min_frequency=1)
    special = save_tokenizer(tok, tok_dir)
    eot = special["<|end_of_text|>"]
    mix = tmp_path / "data_mix"
    save_stream(encode_documents(tok, DOCS, eot), mix, "general", "validation", 100_000)
    save_stream(encode_documents(tok, CODE, eot), mix, "code", "validation", 100_000)
    vocab = tok.get_vocab_size()

    inputs = {"tokenizer": tok_dir, "data_mix": mix}
    for i, name in enumerate(("base_checkpoint", "long_context_checkpoint", "annealed_checkpoint", "code_expert",
                              "multilingual_expert", "sft_round_1", "dpo_round_1", "sft_round_2", "dpo_round_2",
                              "chat_model")):
        torch.manual_seed(i)
        inputs[name] = tmp_path / name
        checkpoint_io.save_model(Transformer(model_args("debug", vocab, max_seq_len=64 if i == 0 else 128)),
                                 inputs[name])
    rows = [("rejection_sampling", "math"), ("rejection_sampling", "math"), ("rejection_sampling", "steer"),
            ("synthetic", "math")]
    for k in (1, 2):
        (inputs[f"sft_round_{k}"] / "sft_data.jsonl").write_text(
            "".join(json.dumps({"source": s, "task": t}) + "\n" for s, t in rows[k - 1:]))
    inputs["reward_round_2"] = tmp_path / "reward_round_2"
    checkpoint_io.save_model(checkpoint_io.build_model(model_args("debug", vocab, max_seq_len=128), "scorer", 1),
                             inputs["reward_round_2"])
    inputs["llama_guard"] = tmp_path / "llama_guard"
    run_llama_guard(GuardConfig(per_category=2, responses_per_category=0, max_len=128, include_policy=False,
                                train={"steps": 1, "batch_size": 4, "lr": 1e-3}),
                    {"annealed_checkpoint": inputs["annealed_checkpoint"], "tokenizer": tok_dir},
                    inputs["llama_guard"], quiet)
    inputs["prompt_guard"] = tmp_path / "prompt_guard"
    run_prompt_guard(PromptGuardConfig(per_class=6, hidden_dim=0, max_len=32,
                                       train={"steps": 1, "batch_size": 8, "lr": 1e-3}),
                     {}, inputs["prompt_guard"], quiet)
    release = inputs["quantized_release"] = tmp_path / "release"
    export_hf(checkpoint_io.load_model(inputs["chat_model"]), release / "hf", tokenizer_dir=tok_dir,
              dtype=torch.bfloat16)
    quantize_fp8(inputs["chat_model"], release / "fp8", scale_ub=1200.0, keep_edge_layers=0, other_dtype=torch.float32)
    quantize_int8(inputs["llama_guard"], release / "guard_int8")

    cfg = EvalConfig(ppl_seq_len=32, ppl_max_windows=2, niah_lengths=[40, 100], niah_depths=[0.0, 1.0], niah_trials=1,
                     niah_distractors=2, task_prompts=4, quant_windows=2)
    out = tmp_path / "report"
    meta = run_eval_report(cfg, inputs, out, quiet)

    report = json.loads((out / "report.json").read_text())
    assert set(report["perplexity"]) == {"base_checkpoint", "long_context_checkpoint", "annealed_checkpoint",
                                         "code_expert", "multilingual_expert", "chat_model"}
    # The code expert against the base on the code stream; the mix has no multilingual stream: no row.
    code = report["experts"]["code_expert"]
    assert code["expert_ppl"] == report["perplexity"]["code_expert"]["ppl"]["code"]
    assert code["domain_ppl_rel_change"] == pytest.approx(code["expert_ppl"] / code["base_ppl"] - 1, abs=1e-4)
    assert set(report["experts"]) == {"code_expert"} and "| code_expert | code |" in (out / "report.md").read_text()
    assert set(report["niah"]) == {"base_checkpoint", "long_context_checkpoint", "annealed_checkpoint", "chat_model"}
    # an untrained model over a 768-token vocabulary is near-uniform: perplexity of the order of the vocabulary
    ppl = report["perplexity"]["chat_model"]["ppl"]["general"]
    assert 100 < ppl < 3 * vocab
    assert "100" not in report["niah"]["base_checkpoint"].get("per_length", {})  # beyond its 64-token context
    assert list(report["tasks"]) == ["sft_round_1", "dpo_round_1", "sft_round_2", "dpo_round_2", "chat_model"]
    assert list(report["rm_round_preference"]) == ["dpo_round_2_over_dpo_round_1"]
    # The same model twice: every answer ties, which counts half.
    same = {"a": inputs["dpo_round_1"], "b": inputs["dpo_round_1"]}
    assert rm_round_preference_section(inputs["reward_round_2"], same, tok_dir, cfg) == {"b_over_a": 0.5}
    assert set(report["guards"]) >= {"llama_guard", "llama_guard_int8", "prompt_guard", "int8_verdict_agreement"}
    q = report["quantization"]
    assert set(q["ppl"]) == {"chat_fp32", "bf16", "fp8"}
    for name in ("bf16", "fp8"):
        assert 0.0 < q[name]["logit_max_abs_delta"] < 1.0 and q[name]["top1_agreement"] > 0.5
        assert all(abs(v) < 0.1 for v in q[name]["ppl_rel_delta"].values())
    for png in report["plots"]:
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "## Validation perplexity" in md and "Llama Guard INT8" in md
    assert _detection_row("s", {"precision": 0.0, "recall": 0.0, "f1": 0.0, "fpr": 0.0, "positives": 0.0,
                                "negatives": 5.0}) == "| s | — | — | — | 0.0 |"
    assert _detection_row("u", {"precision": 1.0, "recall": 0.5, "f1": 0.6667, "fpr": 0.0, "positives": 4.0,
                                "negatives": 0.0}) == "| u | 1.0 | 0.5 | 0.6667 | — |"
    round_1 = report["sft_data"]["sft_round_1"]
    assert (round_1["rejection_sampling"], round_1["synthetic"], round_1["sampled_share"]) == (3, 1, 0.75)
    assert round_1["per_family"] == {"math": {"rejection_sampling": 2, "synthetic": 1, "sampled_share": 0.6667},
                                     "steer": {"rejection_sampling": 1, "synthetic": 0, "sampled_share": 1.0}}
    assert report["sft_data"]["sft_round_2"]["per_family"]["math"]["sampled_share"] == 0.5
    assert "| sft_round_1 | 3 | 1 | 0.75 |" in md and "| sft_round_1 | 2/3 (67%) | 1/1 (100%) |" in md
    assert "- dpo_round_2_over_dpo_round_1: " in md
    assert f"| chat_model | {report['tasks']['chat_model']['accuracy']:.3f} ± " in md
    assert meta["ppl"]["chat_model"] == report["perplexity"]["chat_model"]["mean_ppl"]
    assert set(meta) >= {"llama_guard_f1", "prompt_guard_attack_f1", "fp8_top1_agreement", "task_accuracy_chat"}
    assert np.isfinite(meta["fp8_ppl_rel_delta_max"])
