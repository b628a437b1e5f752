"""Hugging Face Llama export/import: logits match ``transformers.LlamaForCausalLM`` both ways."""

import json

import pytest
import torch

from factory.model.hf import export_hf, from_hf_name, import_hf, to_hf_name
from factory.model.llama import ModelArgs, Transformer

# GQA (4 query heads share 2 kv heads) and Llama 3's RoPE base.
ARGS = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=97, ffn_hidden_dim=64,
                 rope_theta=500_000.0, max_seq_len=64)


def _ours(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(ARGS).eval()
    with torch.no_grad():  # non-trivial norm weights, so a swapped norm would show
        for _name, p in model.named_parameters():
            if p.dim() == 1:
                p.uniform_(0.5, 1.5)
    return model


def test_names_map_both_ways():
    for name in _ours().state_dict():
        assert from_hf_name(to_hf_name(name)) == name
    assert to_hf_name("layers.1.feed_forward.w1.weight") == "model.layers.1.mlp.gate_proj.weight"
    assert to_hf_name("layers.0.ffn_norm.weight") == "model.layers.0.post_attention_layernorm.weight"
    with pytest.raises(KeyError):
        from_hf_name("model.layers.0.self_attn.q_proj.bias")


@pytest.mark.slow  # the first transformers model import takes ~10 s here
def test_export_matches_transformers_logits(tmp_path):
    from transformers import AutoModelForCausalLM

    ours = _ours()
    export_hf(ours, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["num_key_value_heads"] == 2 and config["tie_word_embeddings"] is False
    assert config["rope_parameters"]["rope_theta"] == 500_000.0
    hf = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    tokens = torch.randint(0, ARGS.vocab_size, (3, 40))
    with torch.no_grad():
        diff = (hf(tokens).logits - ours(tokens)).abs().max().item()
    assert diff < 1e-4
    out = hf.generate(tokens[:1, :5], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 9)


@pytest.mark.slow
def test_import_matches_transformers_logits(tmp_path):
    from transformers import LlamaForCausalLM

    from factory.model.hf import hf_config

    torch.manual_seed(1)
    hf = LlamaForCausalLM(hf_config(ARGS, torch.float32, None, None)).eval()
    hf.save_pretrained(tmp_path)
    ours = import_hf(tmp_path)
    assert ours.args == ARGS
    tokens = torch.randint(0, ARGS.vocab_size, (2, 33))
    with torch.no_grad():
        diff = (hf(tokens).logits - ours(tokens)).abs().max().item()
    assert diff < 1e-4


def test_round_trip_is_exact_in_fp32(tmp_path):
    ours = _ours(2)
    export_hf(ours, tmp_path)
    back = import_hf(tmp_path)
    for (k, a), (_, b) in zip(ours.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
