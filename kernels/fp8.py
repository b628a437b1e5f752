"""Row-wise float8_e4m3fn quantization as Triton kernels beside the torch reference (recipe:
"Inference", FP8 quantization).

Each row r of a [M, N] matrix gets one scale s_r with x[r] ~= q[r] * s_r, where
    s_r = max(amax(|x[r]|) / 448, 1 / scale_ub)
and 448 is the largest finite e4m3 value. The quantizing multiplier 1 / s_r is thus bounded by
``scale_ub``: Llama 3 bounds its dynamic scaling factor at 1200 so that rows with a tiny maximum
(where the multiplier would explode) do not over-amplify; a row with amax < 448 / scale_ub simply
uses less of the fp8 range. An all-zero row gets s_r = 1 / scale_ub and quantizes to zeros.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

FP8_E4M3_MAX = float(torch.finfo(torch.float8_e4m3fn).max)  # 448.0
# Adding and subtracting 1.5 * 2^23 rounds an fp32 value below 2^22 to an integer, ties to even.
_RNE_SHIFT = 1.5 * 2**23


def quantize_rowwise_ref(x: torch.Tensor, scale_ub: float) -> tuple[torch.Tensor, torch.Tensor]:
    """[M, N] float -> (q [M, N] float8_e4m3fn, scale [M] float32) with x ~= q * scale[:, None]."""
    xf = x.float()
    scale = torch.clamp(xf.abs().amax(dim=1) / FP8_E4M3_MAX, min=1.0 / scale_ub)
    q = (xf / scale[:, None]).clamp(-FP8_E4M3_MAX, FP8_E4M3_MAX).to(torch.float8_e4m3fn)
    return q, scale


def dequantize_rowwise_ref(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Inverse of ``quantize_rowwise_ref`` up to rounding: q * scale per row, in ``dtype``."""
    return (q.float() * scale.float()[:, None]).to(dtype)


@triton.jit
def _quantize_kernel(X, Q, S, N, min_scale, FP8_MAX: tl.constexpr, RNE_SHIFT: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    scale = tl.maximum(tl.max(tl.abs(x), axis=0) / FP8_MAX, min_scale)
    q = tl.clamp(x / scale, -FP8_MAX, FP8_MAX)
    # Round to the e4m3 grid explicitly (nearest, ties to even), so the final cast is exact on
    # every backend; Triton's CPU interpreter mis-rounds values just below a power of two.
    # Grid step: 2^(e - 3) for normal values (3 mantissa bits), 2^-9 for subnormals (e < -6).
    e = ((q.to(tl.int32, bitcast=True) >> 23) & 0xFF) - 127
    step = ((tl.maximum(e, -6) - 3 + 127) << 23).to(tl.float32, bitcast=True)
    q = ((q / step + RNE_SHIFT) - RNE_SHIFT) * step
    tl.store(Q + row * N + cols, q.to(tl.float8e4nv), mask=mask)
    tl.store(S + row, scale)


@triton.jit
def _dequantize_kernel(Q, S, Y, N, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    q = tl.load(Q + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(Y + row * N + cols, (q * tl.load(S + row)).to(Y.dtype.element_ty), mask=mask)


def quantize_rowwise(x: torch.Tensor, scale_ub: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton version of ``quantize_rowwise_ref`` (same result)."""
    x = x.contiguous()
    m, n = x.shape
    q = torch.empty((m, n), dtype=torch.float8_e4m3fn, device=x.device)
    scale = torch.empty(m, dtype=torch.float32, device=x.device)
    _quantize_kernel[(m,)](x, q, scale, n, 1.0 / scale_ub, FP8_MAX=FP8_E4M3_MAX,
                           RNE_SHIFT=_RNE_SHIFT, BLOCK=triton.next_power_of_2(n))
    return q, scale


def dequantize_rowwise(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Triton version of ``dequantize_rowwise_ref`` (same result)."""
    q = q.contiguous()
    m, n = q.shape
    y = torch.empty((m, n), dtype=dtype, device=q.device)
    _dequantize_kernel[(m,)](q, scale.float().contiguous(), y, n, BLOCK=triton.next_power_of_2(n))
    return y
