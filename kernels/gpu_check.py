"""GPU check of the Triton kernels: correctness against the torch references and time against
eager torch, at the shapes of a ~1B Llama (the ``1B`` flavor: width 2048, FFN 8192, 32 heads of
64, 8192 tokens per step).

Run on a CUDA machine from the repository root::

    python -m kernels.gpu_check            # a table
    python -m kernels.gpu_check --json     # {"results": [...]}

Each row: kernel, max abs error of the output and of the input gradients against the reference
(same inputs and dtype), whether they are within tolerance, and the median time in ms of the
kernel and of eager torch (forward + backward for the autograd kernels). The step MFU of the
whole model with and without kernels is measured by ``python -m factory.model.gpu_step`` (this
package may not import the model). Exits 1 if any kernel is out of tolerance.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import torch


def _time_ms(fn: Callable[[], object]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn))


def _autograd_row(name, kernel, ref, inputs, grad_inputs, dy, tol, timer) -> dict:
    """Compare kernel vs reference on ``inputs`` (grads for those flagged in ``grad_inputs``)."""

    def run(fn):
        leaves = [t.detach().clone().requires_grad_(g) for t, g in zip(inputs, grad_inputs, strict=True)]
        out = fn(*leaves)
        out.backward(dy)
        return out.detach(), [t.grad for t in leaves if t.requires_grad], leaves

    out_k, grads_k, leaves_k = run(kernel)
    out_r, grads_r, leaves_r = run(ref)
    scale = out_r.float().abs().max().item() or 1.0
    out_err = (out_k.float() - out_r.float()).abs().max().item()
    grad_err = max(((a.float() - b.float()).abs().max() / (b.float().abs().max() + 1e-12)).item()
                   for a, b in zip(grads_k, grads_r, strict=True))

    def step(fn, leaves):
        return lambda: fn(*leaves).backward(dy)

    return {
        "name": name,
        "out_max_abs_err": out_err,
        "grad_max_rel_err": grad_err,
        "ok": out_err <= tol * scale and grad_err <= tol,
        "kernel_ms": timer(step(kernel, leaves_k)),
        "eager_ms": timer(step(ref, leaves_r)),
    }


# Shapes of the 1B flavor: width, FFN hidden, heads, head dim, sequence length, tokens per step.
SHAPES_1B = {"dim": 2048, "ffn": 8192, "heads": 32, "head_dim": 64, "seq": 2048, "tokens": 8192}


def check_kernels(
    dtype: torch.dtype = torch.bfloat16,
    shapes: dict[str, int] = SHAPES_1B,
    device: str = "cuda",
    timer: Callable[[Callable[[], object]], float] = _time_ms,
) -> list[dict]:
    """One row per kernel; ``device``/``timer`` are parameters so the script itself can be tested
    on CPU through Triton's interpreter (with tiny shapes and no timing)."""
    from kernels.fp8 import dequantize_rowwise, dequantize_rowwise_ref, quantize_rowwise, quantize_rowwise_ref
    from kernels.rmsnorm import rmsnorm, rmsnorm_ref
    from kernels.rope import rope, rope_ref
    from kernels.swiglu import swiglu, swiglu_ref

    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("kernels.gpu_check needs a CUDA device")
    dev, tokens = device, shapes["tokens"]
    dim, ffn, heads, head_dim, seq = (shapes[k] for k in ("dim", "ffn", "heads", "head_dim", "seq"))
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
    torch.manual_seed(0)
    rows = []

    x = torch.randn(tokens, dim, device=dev, dtype=dtype)
    w = torch.rand(dim, device=dev) + 0.5
    rows.append(_autograd_row("rmsnorm", lambda x, w: rmsnorm(x, w, 1e-5), lambda x, w: rmsnorm_ref(x, w, 1e-5),
                              [x, w], [True, True], torch.randn(tokens, dim, device=dev), tol, timer))

    b = tokens // seq
    q = torch.randn(b, heads, seq, head_dim, device=dev, dtype=dtype)
    inv_freq = 1.0 / (500_000.0 ** (torch.arange(0, head_dim, 2, device=dev).float() / head_dim))
    angles = torch.arange(seq, device=dev).float()[:, None] * inv_freq
    cos, sin = angles.cos(), angles.sin()
    rows.append(_autograd_row("rope", lambda x: rope(x, cos, sin), lambda x: rope_ref(x, cos, sin),
                              [q], [True], torch.randn_like(q), tol, timer))

    a, g = torch.randn(tokens, ffn, device=dev, dtype=dtype), torch.randn(tokens, ffn, device=dev, dtype=dtype)
    rows.append(_autograd_row("swiglu", swiglu, swiglu_ref, [a, g], [True, True], torch.randn_like(a), tol, timer))

    weight = torch.randn(ffn, dim, device=dev) * 0.02
    q8, s8 = quantize_rowwise(weight, 1200.0)
    q8_ref, s8_ref = quantize_rowwise_ref(weight, 1200.0)
    # GPU fp32 division may differ from torch's by an ulp, which can move a value across an fp8 tie.
    mismatch = (q8.view(torch.uint8) != q8_ref.view(torch.uint8)).float().mean().item()
    deq_err = (dequantize_rowwise(q8, s8) - dequantize_rowwise_ref(q8_ref, s8_ref)).abs().max().item()
    rows.append({
        "name": "fp8_quantize_rowwise",
        "out_max_abs_err": deq_err,
        "grad_max_rel_err": 0.0,
        "ok": mismatch < 1e-4 and torch.equal(s8, s8_ref),
        "kernel_ms": timer(lambda: quantize_rowwise(weight, 1200.0)),
        "eager_ms": timer(lambda: quantize_rowwise_ref(weight, 1200.0)),
        "fp8_code_mismatch_fraction": mismatch,
    })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print {\"results\": rows} as JSON")
    parser.add_argument("--dtype", choices=["bfloat16", "float32"], default="bfloat16")
    args = parser.parse_args(argv)
    rows = check_kernels(getattr(torch, args.dtype))
    if args.json:
        print(json.dumps({"results": rows}))
    else:
        for r in rows:
            print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
