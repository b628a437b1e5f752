"""Rotary position embedding as a Triton kernel (forward and backward) beside its torch reference.

"Rotate half" layout (the first and second halves of the head dimension form the pairs), as in
the model and Hugging Face Llama. The rotation is orthogonal, so the backward pass is the same
kernel rotating the gradient by the opposite angle (sin negated).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


def rope_ref(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [B, H, T, D]; cos/sin: [T, D/2] or [B, 1, T, D/2] -> x rotated, computed in fp32."""
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d].float(), x[..., d:].float()
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).type_as(x)


@triton.jit
def _rope_kernel(X, COS, SIN, Y, H, T, HALF, sign, BLOCK: tl.constexpr):
    r = tl.program_id(0)  # one (b, h, t) row of the head dimension
    b = r // (H * T)
    t = r % T
    offs = tl.arange(0, BLOCK)
    mask = offs < HALF
    base = r * 2 * HALF
    x1 = tl.load(X + base + offs, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(X + base + HALF + offs, mask=mask, other=0.0).to(tl.float32)
    c = tl.load(COS + (b * T + t) * HALF + offs, mask=mask, other=0.0)
    s = sign * tl.load(SIN + (b * T + t) * HALF + offs, mask=mask, other=0.0)
    tl.store(Y + base + offs, (x1 * c - x2 * s).to(Y.dtype.element_ty), mask=mask)
    tl.store(Y + base + HALF + offs, (x2 * c + x1 * s).to(Y.dtype.element_ty), mask=mask)


def _tables(t: torch.Tensor, b: int) -> torch.Tensor:
    """[T, D/2] or [B, 1, T, D/2] -> contiguous fp32 [B, T, D/2]."""
    if t.dim() == 4:
        t = t[:, 0]
    return t.float().expand(b, *t.shape[-2:]).contiguous()


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, sign: float) -> torch.Tensor:
    b, h, t, d = x.shape
    x = x.contiguous()
    y = torch.empty_like(x)
    _rope_kernel[(b * h * t,)](x, cos, sin, y, h, t, d // 2, sign, BLOCK=triton.next_power_of_2(d // 2))
    return y


class RoPEFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cos, sin = _tables(cos, x.shape[0]), _tables(sin, x.shape[0])
        ctx.save_for_backward(cos, sin)
        return _rotate(x, cos, sin, 1.0)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        cos, sin = ctx.saved_tensors
        return _rotate(dy, cos, sin, -1.0), None, None


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Triton RoPE; same signature and result as ``rope_ref``, differentiable in ``x``."""
    return RoPEFunction.apply(x, cos, sin)
