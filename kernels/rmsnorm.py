"""RMSNorm as a Triton kernel (forward and backward) beside its torch reference.

y = x / sqrt(mean(x^2) + eps) * w, normalised in fp32. The backward pass uses the saved per-row
reciprocal RMS: with x_hat = x * rstd and g = dy * w,
    dx = rstd * (g - x_hat * mean(g * x_hat)),   dw = sum over rows of dy * x_hat.
Each backward program walks a block of rows and writes one partial dw; torch sums the partials.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Programs of the backward pass: each sums dw over a block of rows (enough to fill a large GPU).
BWD_PROGRAMS = 256


def rmsnorm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Plain-torch RMSNorm, the same arithmetic as the model's ``RMSNorm``."""
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).type_as(x) * weight


@triton.jit
def _rmsnorm_fwd(X, W, Y, RSTD, N, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    mask = cols < N
    x = tl.load(X + row * N + cols, mask=mask, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    w = tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    # Round the normalised row to the input dtype before the weight, as the reference does.
    x_hat = (x * rstd).to(X.dtype.element_ty).to(tl.float32)
    tl.store(Y + row * N + cols, (x_hat * w).to(Y.dtype.element_ty), mask=mask)
    tl.store(RSTD + row, rstd)


@triton.jit
def _rmsnorm_bwd(X, W, DY, DX, DW_PARTIAL, RSTD, M, N, rows_per_program, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    col_mask = cols < N
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    dw = tl.zeros([BLOCK], dtype=tl.float32)
    for i in range(rows_per_program):
        row = pid * rows_per_program + i
        mask = col_mask & (tl.full([BLOCK], row, tl.int32) < M)
        x = tl.load(X + row * N + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + row * N + cols, mask=mask, other=0.0).to(tl.float32)
        rstd = tl.load(RSTD + tl.minimum(row, M - 1))  # masked rows have x = dy = 0 anyway
        x_hat = x * rstd
        g = dy * w
        c = tl.sum(g * x_hat, axis=0) / N
        tl.store(DX + row * N + cols, ((g - x_hat * c) * rstd).to(DX.dtype.element_ty), mask=mask)
        dw += dy * x_hat
    tl.store(DW_PARTIAL + pid * N + cols, dw, mask=col_mask)


class RMSNormFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        shape, n = x.shape, x.shape[-1]
        x2 = x.reshape(-1, n).contiguous()  # [M, N]
        m = x2.shape[0]
        y = torch.empty(x2.shape, dtype=torch.promote_types(x.dtype, weight.dtype), device=x.device)
        rstd = torch.empty(m, dtype=torch.float32, device=x.device)
        _rmsnorm_fwd[(m,)](x2, weight, y, rstd, n, eps, BLOCK=triton.next_power_of_2(n))
        ctx.save_for_backward(x2, weight, rstd)
        ctx.shape = shape
        return y.view(shape)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x2, weight, rstd = ctx.saved_tensors
        m, n = x2.shape
        dy2 = dy.reshape(m, n).contiguous()
        dx = torch.empty_like(x2)
        programs = min(m, BWD_PROGRAMS)
        rows_per_program = triton.cdiv(m, programs)
        partial = torch.empty(programs, n, dtype=torch.float32, device=x2.device)
        _rmsnorm_bwd[(programs,)](x2, weight, dy2, dx, partial, rstd, m, n, rows_per_program,
                                  BLOCK=triton.next_power_of_2(n))
        return dx.view(ctx.shape), partial.sum(0).to(weight.dtype), None


def rmsnorm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """Triton RMSNorm over the last dimension, differentiable in ``x`` and ``weight``."""
    return RMSNormFunction.apply(x, weight, eps)
