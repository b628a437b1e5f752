"""Training throughput: the factory trainer vs Hugging Face ``LlamaForCausalLM``, and per backend.

Both contenders train the same Llama shape (a named flavor, same vocabulary, GQA, RoPE theta)
with AdamW and gradient clipping on the same batches of the same sequence length, with the same
number of CPU threads, in this one command. ``hf`` is the plain loop everyone writes
(``model(input_ids, labels=...)``, fp32, full logits); ``hf-bf16`` (only on devices with native
bf16) is the same loop under bf16 autocast, so the table separates what precision buys from what
the trainer's own work buys (fused chunked output-layer loss: no fp32 copy of the logits).
``factory`` is ``train()`` itself, timed by its own tokens/s records after warm-up steps (which
include the one-off ``torch.compile``; ``wall_s`` shows it); ``factory-eager`` is the same without
``torch.compile``.

Backend rows (``--backends``) run the same model under ``train()`` with 2 Ray Train workers of one
thread each: ``ddp-2`` (DistributedDataParallel, gloo) and ``deepspeed-zero2-2``; ``single-1t`` is
the one-process trainer with one thread, the per-worker baseline of those rows. Their tokens/s
exclude Ray Train's fixed start-up (~20-25 s per run), reported separately as ``wall_s``.
"""

from __future__ import annotations

import argparse
import functools
import time
from typing import Any

import numpy as np
import torch

from factory.bench.cpu import cpu_settings
from factory.core.environment import apply_env
from factory.model.flavors import model_args
from factory.model.llama import ModelArgs, Transformer
from factory.train.config import OptimizerConfig, ParallelismConfig, ScheduleConfig, TrainConfig
from factory.train.data import PackedTokens
from factory.train.losses import LanguageModeling
from factory.train.trainer import bf16_native, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavor", default="tiny", help="model flavor (factory.model.flavors)")
    parser.add_argument("--vocab", type=int, default=8192, help="vocabulary size")
    parser.add_argument("--seq-len", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--batch", type=int, default=8, help="sequences per optimizer step")
    parser.add_argument("--steps", type=int, default=6, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed warm-up steps")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the single-process rows")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="factory trainer precision")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip torch.compile in the factory row (the factory-eager row always runs eager)")
    parser.add_argument("--doc-mask", action="store_true",
                        help="factory rows use document masking of packed sequences (HF cannot)")
    parser.add_argument("--backends", default="ddp,deepspeed",
                        help="comma list of distributed rows to add (ddp, deepspeed) or 'none'")


def _stream(vocab: int, n: int, seed: int = 0) -> np.ndarray:
    """Random tokens with an end-of-text token (id 1) every ~200 tokens."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, vocab, n)
    tokens[rng.random(n) < 1 / 200] = 1
    return tokens


class _NoDocIds:
    """A batch source minus ``doc_ids``: plain causal attention, the work HF does."""

    def __init__(self, inner: PackedTokens):
        self.inner = inner

    def batch(self, offset: int, batch_size: int) -> dict[str, torch.Tensor]:
        out = self.inner.batch(offset, batch_size)
        del out["doc_ids"]
        return out


def _measured_tps(history: list[dict[str, float]], warmup: int) -> float:
    """Tokens/s over the steps after warm-up, from per-step records (log_every=1)."""
    timed = [h for h in history if h["step"] > warmup]
    # Every step has the same sequence length, so tokens are proportional to sequences.
    return sum(h["batch_size"] for h in timed) / sum(h["batch_size"] / h["tokens_per_s"] for h in timed)


def _factory_row(name: str, cfg: TrainConfig, args_: ModelArgs, data: Any, a: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = train(cfg, functools.partial(Transformer, args_), LanguageModeling(), data, log=lambda _m: None)
    wall = time.perf_counter() - t0
    tps = _measured_tps(result.history, a.warmup)
    fpt = Transformer(args_).flops_per_token(a.seq_len)
    return {
        "name": name,
        "tokens_per_s": tps,
        "mfu": fpt * tps / (cfg.peak_flops * cfg.parallelism.num_workers),
        "final_loss": result.history[-1]["loss"],
        "wall_s": wall,
    }


def _hf_row(name: str, args_: ModelArgs, data: PackedTokens, a: argparse.Namespace, autocast: bool) -> dict[str, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=args_.vocab_size, hidden_size=args_.dim, intermediate_size=args_.ffn_hidden_dim,
        num_hidden_layers=args_.n_layers, num_attention_heads=args_.n_heads,
        num_key_value_heads=args_.n_kv_heads, rms_norm_eps=args_.norm_eps, rope_theta=args_.rope_theta,
        max_position_embeddings=args_.max_seq_len, tie_word_embeddings=False, attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    t0, wall0, loss = 0.0, time.perf_counter(), torch.tensor(0.0)
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        ids = data.batch(step * a.batch, a.batch)["input_ids"]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
    tps = a.steps * a.batch * a.seq_len / (time.perf_counter() - t0)
    fpt = Transformer(args_).flops_per_token(a.seq_len)
    return {"name": name, "tokens_per_s": tps, "mfu": fpt * tps / 150e9, "final_loss": loss.item(),
            "wall_s": time.perf_counter() - wall0}


def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    apply_env()
    with cpu_settings(threads=a.threads):
        return _rows(a)


def _rows(a: argparse.Namespace) -> list[dict[str, Any]]:
    args_ = model_args(a.flavor, a.vocab, max_seq_len=a.seq_len)
    packed = PackedTokens(_stream(a.vocab, 200_000), a.seq_len, eot_id=1, seed=0)
    data = packed if a.doc_mask else _NoDocIds(packed)
    base = {"steps": a.warmup + a.steps, "batch_size": a.batch, "lr": 3e-4, "log_every": 1,
            "precision": a.precision, "schedule": ScheduleConfig(warmup_steps=1),
            "optimizer": OptimizerConfig(grad_clip=1.0)}
    rows = [
        _factory_row("factory", TrainConfig(**base, compile=not a.no_compile), args_, data, a),
        _factory_row("factory-eager", TrainConfig(**base), args_, data, a),
        _hf_row("hf", args_, packed, a, autocast=False),
    ]
    if a.precision == "bf16" and bf16_native(torch.device("cpu")):
        rows.append(_hf_row("hf-bf16", args_, packed, a, autocast=True))
    backends = [b for b in a.backends.split(",") if b and b != "none"]
    if backends:
        with cpu_settings(threads=1):
            rows.append(_factory_row("single-1t", TrainConfig(**base), args_, data, a))
    if "ddp" in backends:
        cfg = TrainConfig(**base, parallelism=ParallelismConfig(backend="ddp", num_workers=2))
        rows.append(_factory_row("ddp-2", cfg, args_, data, a))
    if "deepspeed" in backends:
        cfg = TrainConfig(**base, parallelism=ParallelismConfig(backend="deepspeed", num_workers=2, zero_stage=2))
        rows.append(_factory_row("deepspeed-zero2-2", cfg, args_, data, a))
    params = Transformer(args_).num_params()
    for row in rows:
        row.update(params=params, seq_len=a.seq_len, batch=a.batch)
    return rows
