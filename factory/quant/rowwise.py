"""The on-disk format shared by the row-wise weight quantizers (FP8 release, INT8 guard) and its
one dequantizing loader (recipe: "Inference", FP8 quantization).

A quantized checkpoint folder mirrors ``factory.model.checkpoint_io``:
- ``model.safetensors``: every tensor of the source state dict under its own name; a quantized
  matrix ``W`` [rows, cols] is stored in its low-precision dtype with ``<name>_scale`` (float32
  [rows]) beside it, such that ``W ~= q * scale[:, None]``; other tensors in a stated dtype;
- ``model.json``: copied verbatim from the source checkpoint (shape, kind, labels);
- ``quantization.json``: the scheme, its parameters and the list of quantized tensors.
``load_quantized`` dequantizes on CPU into fp32 and rebuilds the model with ``checkpoint_io``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from factory.model.checkpoint_io import META, WEIGHTS, build_model, load_args, load_state, read_meta

QUANT_META = "quantization.json"
SCALE_SUFFIX = "_scale"

# (weight [rows, cols] float) -> (q [rows, cols] low precision, scale [rows] float32), W ~= q * scale
RowQuantizer = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def write_rowwise(
    src: Path,
    dst: Path,
    select: Callable[[dict[str, torch.Tensor]], Iterable[str]],
    quantize: RowQuantizer,
    scheme: dict[str, Any],
    other_dtype: torch.dtype,
) -> dict[str, float]:
    """Quantize the tensors ``select(state)`` names of the checkpoint ``src`` into ``dst``.

    Returns the round-trip errors over all quantized tensors: ``max_abs_error`` (largest
    |W - deq(q)|) and ``rel_error`` (||W - deq(q)||_F / ||W||_F).
    """
    state = load_state(src)
    targets = sorted(select(state))
    unknown = [t for t in targets if t not in state or state[t].dim() != 2]
    if unknown:
        raise KeyError(f"not 2-D tensors of {src}: {unknown}")
    out: dict[str, torch.Tensor] = {}
    max_abs, err_sq, ref_sq = 0.0, 0.0, 0.0
    for name, w in state.items():
        if name in targets:
            q, scale = quantize(w.float())
            out[name], out[name + SCALE_SUFFIX] = q, scale.float()
            diff = _dequantize(q, scale) - w.float()
            max_abs = max(max_abs, diff.abs().max().item())
            err_sq += diff.pow(2).sum().item()
            ref_sq += w.float().pow(2).sum().item()
        else:
            out[name] = w.to(other_dtype).contiguous()
    dst.mkdir(parents=True, exist_ok=True)
    save_file(out, str(dst / WEIGHTS))
    shutil.copyfile(src / META, dst / META)
    meta = {**scheme, "other_dtype": str(other_dtype).removeprefix("torch."), "quantized": targets,
            "format": "W ~= q * <name>_scale[:, None] (one float32 scale per output row)"}
    (dst / QUANT_META).write_text(json.dumps(meta, indent=2))
    return {"max_abs_error": max_abs, "rel_error": (err_sq / ref_sq) ** 0.5 if ref_sq else 0.0}


def _dequantize(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()[:, None]


def dequantize_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A stored quantized state dict -> the plain fp32 state dict of the model."""
    out = {}
    for name, t in state.items():
        if name.endswith(SCALE_SUFFIX) and name.removesuffix(SCALE_SUFFIX) in state:
            continue
        scale = state.get(name + SCALE_SUFFIX)
        out[name] = _dequantize(t, scale) if scale is not None else t.float()
    return out


def load_quantized(folder: Path) -> nn.Module:
    """Rebuild a quantized checkpoint (FP8 LM or INT8 scorer) as an fp32 model on CPU, in eval mode."""
    folder = Path(folder)
    if not (folder / QUANT_META).exists():
        raise FileNotFoundError(f"{folder} is not a quantized checkpoint (no {QUANT_META})")
    meta = read_meta(folder)
    model = build_model(load_args(folder), meta["kind"], meta["n_outputs"] or 1)
    model.load_state_dict(dequantize_state(load_file(str(folder / WEIGHTS))))
    return model.eval()
