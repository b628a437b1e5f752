"""The SwiGLU gate silu(a) * b as a Triton kernel (forward and backward) beside its torch reference.

With s = sigmoid(a): d/da [a * s * b] = b * s * (1 + a * (1 - s)), d/db = a * s. The kernel fuses
the gate so the [tokens, ffn_hidden] activations are read and written once per pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import triton
import triton.language as tl

BLOCK = 1024


def swiglu_ref(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """silu(a) * b, as the model's ``FeedForward`` computes it between w1/w3 and w2."""
    return F.silu(a) * b


@triton.jit
def _swiglu_fwd(A, B, Y, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(A + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(B + offs, mask=mask, other=0.0).to(tl.float32)
    silu = (a * tl.sigmoid(a)).to(Y.dtype.element_ty).to(tl.float32)  # rounded like F.silu's output
    tl.store(Y + offs, (silu * b).to(Y.dtype.element_ty), mask=mask)


@triton.jit
def _swiglu_bwd(A, B, DY, DA, DB, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    a = tl.load(A + offs, mask=mask, other=0.0).to(tl.float32)
    b = tl.load(B + offs, mask=mask, other=0.0).to(tl.float32)
    dy = tl.load(DY + offs, mask=mask, other=0.0).to(tl.float32)
    s = tl.sigmoid(a)
    tl.store(DA + offs, (dy * b * s * (1.0 + a * (1.0 - s))).to(DA.dtype.element_ty), mask=mask)
    tl.store(DB + offs, (dy * a * s).to(DB.dtype.element_ty), mask=mask)


class SwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(f"swiglu needs matching inputs, got {a.shape}/{a.dtype} and {b.shape}/{b.dtype}")
        a, b = a.contiguous(), b.contiguous()
        y = torch.empty_like(a)
        n = a.numel()
        _swiglu_fwd[(triton.cdiv(n, BLOCK),)](a, b, y, n, BLOCK=BLOCK)
        ctx.save_for_backward(a, b)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        a, b = ctx.saved_tensors
        da, db = torch.empty_like(a), torch.empty_like(b)
        n = a.numel()
        _swiglu_bwd[(triton.cdiv(n, BLOCK),)](a, b, dy.contiguous(), da, db, n, BLOCK=BLOCK)
        return da, db


def swiglu(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Triton silu(a) * b, differentiable in both inputs."""
    return SwiGLUFunction.apply(a, b)
