"""The quantized_release stage end to end on tiny inputs: HF bundle loads with transformers,
FP8 and INT8 folders load with the project's loader, safety tools copied, model card written."""

import json

import pytest
import torch

from factory.core.stage import StageContext
from factory.model.checkpoint_io import save_model
from factory.model.llama import ModelArgs, SequenceScorer, Transformer
from factory.post.tasks import TASKS
from factory.quant.rowwise import load_quantized
from factory.release.bundle import ReleaseConfig, run_quantized_release

CFG = ReleaseConfig(name="factory-chat-test", license="Apache-2.0", hf_dtype="bfloat16",
                    eval_sequences=3, eval_seq_len=16, eval_prompts=8)


@pytest.fixture
def inputs(tmp_path, tokenizer_dir):
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json")).get_vocab_size()
    args = ModelArgs(dim=32, n_layers=3, n_heads=4, n_kv_heads=2, vocab_size=vocab, ffn_hidden_dim=64, max_seq_len=128)
    torch.manual_seed(0)
    save_model(Transformer(args), tmp_path / "chat")
    save_model(SequenceScorer(args, 3), tmp_path / "guard", extra={"labels": ["safe", "S1", "S2"]})
    (tmp_path / "chat" / "manifest.json").write_text(json.dumps({"stage": "chat_model", "key": "k1", "digest": "d1"}))
    for name in ("prompt_guard", "code_shield"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps({"tool": name}))
        (tmp_path / name / "manifest.json").write_text("{}")
    return {"chat_model": tmp_path / "chat", "tokenizer": tokenizer_dir, "llama_guard": tmp_path / "guard",
            "prompt_guard": tmp_path / "prompt_guard", "code_shield": tmp_path / "code_shield"}


@pytest.mark.slow  # imports transformers' model classes (~10 s here)
def test_release_bundle(tmp_path, inputs):
    from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerFast

    out = tmp_path / "release"
    meta = run_quantized_release(CFG, inputs, out, StageContext())
    json.dumps(meta)  # JSON-able

    assert meta["fp8"]["quantized_layers"] == [1] and meta["fp8"]["kept_layers"] == [0, 2]
    assert 0 < meta["fp8"]["rel_error"] < 2**-4
    assert 0 < meta["fp8"]["logit_delta"]["max_abs"] < 0.05
    assert meta["guard_int8"]["score_delta"]["max_abs"] < 0.01
    dev = meta["fp8"]["dev_accuracy"]  # an untrained model: both answer nothing right, on the same prompts
    assert set(dev) == {"bfloat16", "fp8"} and all(a["n"] == len(TASKS) and a["accuracy"] == 0.0 for a in dev.values())
    assert meta["sizes_bytes"]["guard_int8"] < meta["sizes_bytes"]["guard_fp32"]
    assert meta["lineage"]["chat_model"] == {"stage": "chat_model", "key": "k1", "digest": "d1"}
    assert (out / "prompt_guard" / "config.json").exists() and not (out / "prompt_guard" / "manifest.json").exists()
    assert (out / "code_shield" / "config.json").exists()
    assert load_quantized(out / "fp8").args.n_layers == 3

    card = (out / "README.md").read_text()
    assert "## Intended use" in card and "## Limitations" in card and "| chat_model | chat_model | k1 | d1 |" in card
    assert f"{meta['fp8']['logit_delta']['max_abs']:.3g}" in card

    tok = AutoTokenizer.from_pretrained(out / "hf", local_files_only=True)
    assert isinstance(tok, PreTrainedTokenizerFast) and tok.eos_token == "<|eot_id|>"
    text = tok.apply_chat_template([{"role": "user", "content": "hello world"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello world<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
    model = AutoModelForCausalLM.from_pretrained(out / "hf", local_files_only=True)
    assert model.dtype == torch.bfloat16
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    gen = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 5 or tok.convert_ids_to_tokens(int(gen[0, -1])) == "<|eot_id|>"


def test_rejects_a_scorer_as_chat_model(tmp_path, inputs):
    bad = dict(inputs, chat_model=inputs["llama_guard"])
    with pytest.raises(ValueError, match="not a language model"):
        run_quantized_release(CFG, bad, tmp_path / "release", StageContext())
