"""Training-step throughput and MFU of a Llama flavor, eager against Triton kernels (recipe:
"Infrastructure, Scaling, and Efficiency": MFU is the figure the paper reports).

A micro-benchmark of one optimizer step (forward, backward, AdamW) under bf16 autocast on random
tokens, not a training loop: training goes through ``factory.train``. Run on a CUDA machine::

    python -m factory.model.gpu_step --flavor 1B --batch 4 --seq 2048 [--json]

It prints one row per mode (``eager``, ``kernels`` via ``factory.model.convert.apply_kernels``):
tokens/s, ms per step, MFU against ``--peak-tflops`` (989: H100/H200 dense bf16) and peak memory.
MFU counts the model's own ``flops_per_token`` (6N + attention). The kernels themselves are
checked and timed one by one by ``python -m kernels.gpu_check``.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from factory.model.convert import apply_kernels
from factory.model.flavors import model_args
from factory.model.llama import Transformer

LLAMA3_VOCAB = 128_256


def measure_step(
    flavor: str,
    *,
    kernels: bool,
    batch: int,
    seq: int,
    steps: int,
    warmup: int,
    peak_tflops: float,
    vocab_size: int = LLAMA3_VOCAB,
    device: str = "cuda",
) -> dict:
    torch.manual_seed(0)
    model = Transformer(model_args(flavor, vocab_size, max_seq_len=seq)).to(device)
    apply_kernels(model, kernels)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    tokens = torch.randint(0, vocab_size, (batch, seq + 1), device=device)

    def step() -> float:
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            logits = model(tokens[:, :-1])
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.item()

    for _ in range(warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()  # .item() synchronizes each step
    elapsed = time.perf_counter() - start
    tokens_per_s = batch * seq * steps / elapsed
    return {
        "name": "kernels" if kernels else "eager",
        "params": model.num_params(),
        "tokens_per_s": tokens_per_s,
        "step_ms": 1000 * elapsed / steps,
        "mfu": model.flops_per_token(seq) * tokens_per_s / (peak_tflops * 1e12),
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0,
        "loss": loss,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flavor", default="1B")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="dense bf16 peak of the GPU (H100/H200 SXM: 989)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = [
        measure_step(args.flavor, kernels=k, batch=args.batch, seq=args.seq, steps=args.steps,
                     warmup=args.warmup, peak_tflops=args.peak_tflops)
        for k in (False, True)
    ]
    if args.json:
        print(json.dumps({"results": rows}))
    else:
        for r in rows:
            print("  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()))


if __name__ == "__main__":
    main()
