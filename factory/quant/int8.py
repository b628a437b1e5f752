"""Symmetric per-row INT8 weight quantization of the guard classifier (recipe: "Safety
characteristics" — Llama Guard 3 was also released quantized to shrink its deployment cost).

Every matrix of the backbone (embeddings and all linear layers) gets one scale per output row,
scale = max|W_row| / 127, q = round(W / scale) in [-127, 127]; norms and the small classification
head stay in float32, since the head decides the labels and costs nothing. The folder uses the
format of ``factory.quant.rowwise`` and loads with ``load_quantized``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from factory.model.checkpoint_io import read_meta
from factory.quant.rowwise import write_rowwise

SCHEME = "int8_rowwise_symmetric"
INT8_MAX = 127


def quantize_int8_rowwise(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[rows, cols] float -> (q int8, scale float32 [rows]) with W ~= q * scale[:, None]."""
    scale = w.float().abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / INT8_MAX
    q = torch.round(w.float() / scale[:, None]).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)
    return q, scale


def int8_targets(state: dict[str, torch.Tensor]) -> list[str]:
    """All 2-D backbone weights (embeddings, attention, FFN, output projection)."""
    return [k for k, v in state.items() if v.dim() == 2 and k.startswith("backbone.")]


def quantize_int8(src: Path, dst: Path) -> dict:
    """Write the INT8 version of the scorer checkpoint ``src`` into ``dst``; returns errors."""
    if read_meta(src)["kind"] != "scorer":
        raise ValueError(f"{src} is not a SequenceScorer checkpoint")
    return write_rowwise(src, dst, int8_targets, quantize_int8_rowwise, {"scheme": SCHEME}, torch.float32)
