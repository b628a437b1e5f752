"""INT8 guard classifier: per-row symmetric weights, outputs stay close after dequantization."""

import pytest
import torch
from safetensors.torch import load_file

from factory.model.checkpoint_io import load_model, save_model
from factory.model.llama import ModelArgs, SequenceScorer, Transformer
from factory.quant.int8 import quantize_int8, quantize_int8_rowwise
from factory.quant.rowwise import load_quantized

ARGS = ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=60, ffn_hidden_dim=64)


def test_rowwise_int8_is_symmetric_and_uses_full_range():
    w = torch.tensor([[0.5, -1.0, 0.25], [0.0, 0.0, 0.0], [3.0, 1.5, -0.03]])
    q, scale = quantize_int8_rowwise(w)
    assert q.dtype == torch.int8
    assert q[0].tolist() == [64, -127, 32] and q[1].tolist() == [0, 0, 0] and q[2].tolist() == [127, 64, -1]
    assert ((q.float() * scale[:, None] - w).abs() <= scale[:, None] / 2 + 1e-7).all()


def test_guard_outputs_stay_close(tmp_path):
    torch.manual_seed(0)
    save_model(SequenceScorer(ARGS, n_outputs=14), tmp_path / "guard", extra={"labels": [f"S{i}" for i in range(14)]})
    stats = quantize_int8(tmp_path / "guard", tmp_path / "int8")
    assert stats["rel_error"] < 0.01
    state = load_file(str(tmp_path / "int8" / "model.safetensors"))
    assert state["backbone.layers.0.attention.wq.weight"].dtype == torch.int8
    assert state["score.weight"].dtype == torch.float32
    guard, int8 = load_model(tmp_path / "guard"), load_quantized(tmp_path / "int8")
    tokens = torch.randint(0, 60, (4, 12))
    lengths = torch.tensor([12, 7, 3, 10])
    with torch.no_grad():
        a, b = guard(tokens, lengths), int8(tokens, lengths)
    assert (a - b).abs().max().item() < 0.01 * a.abs().max().item() + 1e-4


def test_rejects_a_language_model(tmp_path):
    save_model(Transformer(ARGS), tmp_path / "lm")
    with pytest.raises(ValueError, match="not a SequenceScorer"):
        quantize_int8(tmp_path / "lm", tmp_path / "int8")
