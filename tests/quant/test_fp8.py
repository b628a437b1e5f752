"""FP8 row-wise release weights: which tensors, bounded scales, round-trip error, loader."""

import json

import torch
from safetensors.torch import load_file

from factory.model.checkpoint_io import load_model, save_model
from factory.model.llama import ModelArgs, Transformer
from factory.quant.fp8 import fp8_targets, quantize_fp8
from factory.quant.rowwise import load_quantized

ARGS = ModelArgs(dim=32, n_layers=4, n_heads=4, n_kv_heads=2, vocab_size=60, ffn_hidden_dim=64)


def _checkpoint(tmp_path):
    torch.manual_seed(0)
    save_model(Transformer(ARGS), tmp_path / "lm")
    return tmp_path / "lm"


def test_only_middle_ffn_weights_are_fp8_with_bounded_scales(tmp_path):
    src = _checkpoint(tmp_path)
    stats = quantize_fp8(src, tmp_path / "fp8", scale_ub=1200.0, keep_edge_layers=1, other_dtype=torch.bfloat16)
    assert stats["quantized_layers"] == [1, 2]
    state = load_file(str(tmp_path / "fp8" / "model.safetensors"))
    fp8 = {k for k, v in state.items() if v.dtype == torch.float8_e4m3fn}
    assert fp8 == set(fp8_targets(ARGS, 1)) and len(fp8) == 6
    assert all(state[f"layers.{i}.feed_forward.w1.weight"].dtype == torch.bfloat16 for i in (0, 3))
    assert state["layers.1.attention.wq.weight"].dtype == torch.bfloat16
    for name in fp8:
        assert state[name + "_scale"].shape == (state[name].shape[0],)
        assert (1.0 / state[name + "_scale"] <= 1200.0 * (1 + 1e-6)).all()
    meta = json.loads((tmp_path / "fp8" / "quantization.json").read_text())
    assert meta["kept_layers"] == [0, 3] and meta["scale_ub"] == 1200.0


def test_round_trip_error_is_bounded_and_loader_runs(tmp_path):
    src = _checkpoint(tmp_path)
    stats = quantize_fp8(src, tmp_path / "fp8", scale_ub=1200.0, keep_edge_layers=1, other_dtype=torch.float32)
    # Weights ~ N(0, 0.02): e4m3 keeps 3 mantissa bits, so <= 2^-4 relative per element.
    assert 0 < stats["rel_error"] < 2**-4 and stats["max_abs_error"] < 0.1 * 2**-4
    original, restored = load_model(src), load_quantized(tmp_path / "fp8")
    w, w8 = original.layers[2].feed_forward.w2.weight, restored.layers[2].feed_forward.w2.weight
    assert not torch.equal(w, w8)
    assert ((w - w8).abs() <= w.abs() * 2**-4 + 1e-5).all()
    assert torch.equal(original.layers[0].feed_forward.w1.weight, restored.layers[0].feed_forward.w1.weight)
    tokens = torch.randint(0, 60, (2, 16))
    with torch.no_grad():
        delta = (original(tokens) - restored(tokens)).abs().max().item()
    assert 0 < delta < 0.05


def test_keeping_every_layer_quantizes_nothing(tmp_path):
    src = _checkpoint(tmp_path)
    stats = quantize_fp8(src, tmp_path / "fp8", scale_ub=1200.0, keep_edge_layers=2, other_dtype=torch.float32)
    assert stats["quantized_layers"] == [] and stats["max_abs_error"] == 0.0


def test_activation_emulation_rounds_ffn_inputs_per_token(tmp_path):
    from factory.quant.fp8 import FP8ActivationLinear, emulate_fp8_activations

    src = _checkpoint(tmp_path)
    quantize_fp8(src, tmp_path / "fp8", scale_ub=1200.0, keep_edge_layers=1, other_dtype=torch.float32)
    model = load_quantized(tmp_path / "fp8")
    tokens = torch.randint(0, 60, (2, 16))
    with torch.no_grad():
        weight_only = model(tokens)
        emulate_fp8_activations(model, [1, 2], 1200.0)
        both = model(tokens)
    assert isinstance(model.layers[1].feed_forward.w2, FP8ActivationLinear)
    assert not isinstance(model.layers[0].feed_forward.w2, FP8ActivationLinear)
    delta = (both - weight_only).abs().max().item()
    assert 0 < delta < 0.05
    lin = model.layers[1].feed_forward.w1
    x = torch.tensor([[1.0, 0.3, -0.07] + [0.0] * 29])
    # Row amax 1 -> scale 1/448: 0.3 * 448 = 134.4 lies in [128, 256) where e4m3 steps by 16 -> 128;
    # 0.07 * 448 = 31.36 lies in [16, 32) with step 2 -> 32.
    rounded = torch.tensor([[1.0, 128 / 448, -32 / 448] + [0.0] * 29])
    torch.testing.assert_close(lin(x), torch.nn.functional.linear(rounded, lin.weight))
