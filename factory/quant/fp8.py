"""FP8 row-wise quantization of the chat model's feed-forward weights (recipe: "Inference", FP8).

As Llama 3 did for inference: only the FFN matrices (w1, w3, w2 — the bulk of the compute) are
quantized to float8_e4m3fn with one scale per output row; attention, embeddings, norms and the
output head stay in high precision, and so do the first and last Transformer layers, whose FFNs
proved most sensitive. The quantizing multiplier of each row is bounded by ``scale_ub`` (the
paper bounds its dynamic scaling factor at 1200) — see ``kernels.fp8`` for the exact arithmetic.
The weights are stored with safetensors (which holds float8_e4m3fn natively) in the format of
``factory.quant.rowwise``; the project's loader dequantizes them on CPU (weight-only FP8).
``emulate_fp8_activations`` adds what an FP8 GEMM also does on H100: each FFN input row (token) is
quantized on the fly with its own dynamic scale, bounded the same way — where the paper's bound of
1200 on the dynamic scaling factor comes from.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from factory.model.checkpoint_io import load_args, read_meta
from factory.model.llama import ModelArgs, Transformer
from factory.quant.rowwise import write_rowwise

SCHEME = "fp8_e4m3fn_rowwise"
FFN_WEIGHTS = ("w1", "w2", "w3")


def fp8_layers(args: ModelArgs, keep_edge_layers: int) -> list[int]:
    """Indices of the layers whose FFN is quantized: all but ``keep_edge_layers`` at each end."""
    if keep_edge_layers < 0:
        raise ValueError(f"keep_edge_layers must be >= 0, got {keep_edge_layers}")
    return list(range(keep_edge_layers, args.n_layers - keep_edge_layers))


def fp8_targets(args: ModelArgs, keep_edge_layers: int) -> list[str]:
    return [f"layers.{i}.feed_forward.{w}.weight" for i in fp8_layers(args, keep_edge_layers) for w in FFN_WEIGHTS]


def quantize_fp8(src: Path, dst: Path, *, scale_ub: float, keep_edge_layers: int, other_dtype: torch.dtype) -> dict:
    """Write the FP8 version of the LM checkpoint ``src`` into ``dst``; returns the quantized and
    kept layers and the round-trip errors (see ``write_rowwise``)."""
    from kernels.fp8 import quantize_rowwise, quantize_rowwise_ref

    if read_meta(src)["kind"] != "lm":
        raise ValueError(f"{src} is not a language model checkpoint")
    if scale_ub <= 0:
        raise ValueError(f"scale_ub must be > 0, got {scale_ub}")
    args = load_args(src)

    def quantize(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return (quantize_rowwise if w.is_cuda else quantize_rowwise_ref)(w, scale_ub)

    quantized = fp8_layers(args, keep_edge_layers)
    layers = {"quantized_layers": quantized, "kept_layers": [i for i in range(args.n_layers) if i not in quantized]}
    scheme = {"scheme": SCHEME, "scale_ub": scale_ub, **layers, "quantized_weights": list(FFN_WEIGHTS)}
    errors = write_rowwise(src, dst, lambda _: fp8_targets(args, keep_edge_layers), quantize, scheme, other_dtype)
    return {**layers, **errors}


class FP8ActivationLinear(nn.Linear):
    """A linear layer whose input rows are rounded through row-wise e4m3 before the matmul."""

    scale_ub: float

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from kernels.fp8 import dequantize_rowwise_ref, quantize_rowwise_ref

        rows = x.reshape(-1, x.shape[-1])  # [tokens, in_features]: one dynamic scale per token
        q, scale = quantize_rowwise_ref(rows, self.scale_ub)
        return F.linear(dequantize_rowwise_ref(q, scale, x.dtype).view(x.shape), self.weight)


def emulate_fp8_activations(model: Transformer, layers: list[int], scale_ub: float) -> None:
    """Make the FFN matmuls of ``layers`` quantize their inputs dynamically (in place)."""
    for i in layers:
        for name in FFN_WEIGHTS:
            linear = getattr(model.layers[i].feed_forward, name)
            linear.__class__ = FP8ActivationLinear  # same parameters, new forward
            linear.scale_ub = scale_ub
