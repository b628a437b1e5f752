"""The one training loop of the factory (recipe: "Pre-Training Recipe", "Post-training").

Every training stage — pre-training, long context, annealing, experts, reward model, SFT, DPO,
guard classifiers, scaling-law grid runs — is a configuration of ``train``: a model builder, an
objective (``factory.train.losses``), a batch source (``factory.train.data``) and a
``TrainConfig`` (schedule, batch ramp, clipping, precision, checkpointing). Nothing else loops.

Resumption is exact: checkpoints hold model, optimizer, RNG and the data position (samples
consumed), the LR is a pure function of the step, and batches are a pure function of the data
position, so a resumed run continues the same loss curve.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import torch
from pydantic import Field
from torch import nn

from factory.stage import StageConfig
from factory.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from factory.train.schedules import ScheduleKind, batch_size_at, learning_rate, samples_before


class TrainConfig(StageConfig):
    """Optimization and run-control settings of one training run."""

    steps: int = Field(description="Optimizer steps of the run.")
    batch_size: int = Field(description="Global batch size (samples per optimizer step) after any ramp.")
    micro_batch_size: int = Field(0, description="Samples per forward/backward; 0 means the whole batch at once.")
    lr: float = Field(description="Peak learning rate.")
    min_lr: float = Field(0.0, description="Floor of the cosine schedule.")
    warmup_steps: int = Field(0, description="Linear warmup steps.")
    schedule: ScheduleKind = Field("cosine", description="cosine (to min_lr), linear_to_zero (annealing) or constant.")
    batch_ramp: list[tuple[int, int]] = Field(
        default_factory=list, description="Batch-size ramp: [(until_step, batch_size), ...], then batch_size."
    )
    weight_decay: float = Field(0.1, description="AdamW decoupled weight decay on matrices.")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    grad_clip: float = Field(1.0, description="Global gradient-norm clip; 0 disables it.")
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast with fp32 master weights, or fp32.")
    seed: int = Field(0, description="Seed of model init and of the sample order.")
    log_every: int = Field(10, description="Steps between metric reports.")
    checkpoint_every: int = Field(0, description="Steps between checkpoints; 0 = only at the end.")
    keep_last: int = Field(2, description="Checkpoints kept on disk.")
    peak_flops: float = Field(150e9, description="Peak FLOP/s of one worker's device, for MFU.")


class Objective(Protocol):
    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...


class BatchSource(Protocol):
    def batch(self, offset: int, batch_size: int) -> dict[str, torch.Tensor]: ...


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, float]]
    steps: int
    resumed_from: int | None
    wall_s: float
    tokens: int
    final: dict[str, float] = field(default_factory=dict)


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens a batch feeds the model: every ``*_ids`` field except document ids."""
    return sum(v.numel() for k, v in batch.items() if k.endswith("_ids") and k != "doc_ids")


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    core = getattr(model, "backbone", model)
    return core.flops_per_token(seq_len) if hasattr(core, "flops_per_token") else 0.0


def _optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    # Decay matrices only; norms, biases and the scorer bias are not decayed.
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=1e-8)


def _split(batch: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    n = next(iter(batch.values())).shape[0]
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def train(
    cfg: TrainConfig,
    build_model: Callable[[], nn.Module],
    objective: Objective,
    data: BatchSource,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    strict_init: bool = True,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] = print,
    on_metrics: Callable[[dict[str, float], int], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Run (or resume) one training run and return the trained model.

    ``init_state`` seeds the weights of a fresh run (a pre-trained checkpoint; ``strict_init=False``
    lets a scorer head start from a decoder's weights). ``checkpoint_dir`` enables checkpoints and
    resumption. ``stop_after`` ends the run early after that step (to simulate an interruption).
    """
    torch.manual_seed(cfg.seed)
    model = build_model()
    if init_state is not None:
        missing, unexpected = model.load_state_dict(init_state, strict=strict_init)
        if unexpected:
            raise ValueError(f"initial weights have keys the model lacks: {unexpected[:5]}")
        if missing:
            log(f"fresh parameters not in the initial weights: {missing}")
    optimizer = _optimizer(model, cfg)
    start, resumed_from = 0, None
    if checkpoint_dir is not None and (ckpt := latest_checkpoint(checkpoint_dir)) is not None:
        state = load_checkpoint(ckpt)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["meta"]["torch_rng"])
        start = resumed_from = state["meta"]["step"]
        log(f"resumed from {ckpt.name} (step {start})")

    autocast = (
        torch.autocast("cpu", dtype=torch.bfloat16) if cfg.precision == "bf16" else contextlib.nullcontext()
    )
    history: list[dict[str, float]] = []
    window_tokens, window_start, productive_s = 0, time.perf_counter(), 0.0
    total_tokens, t0 = 0, time.perf_counter()
    model.train()
    step = start
    for step in range(start, cfg.steps):
        step_t0 = time.perf_counter()
        lr = learning_rate(step, kind=cfg.schedule, peak=cfg.lr, floor=cfg.min_lr, warmup=cfg.warmup_steps, total=cfg.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        bsz = batch_size_at(step, cfg.batch_size, cfg.batch_ramp)
        batch = data.batch(samples_before(step, cfg.batch_size, cfg.batch_ramp), bsz)
        micro = cfg.micro_batch_size or bsz
        metrics_sum: dict[str, float] = {}
        for part in _split(batch, micro):
            weight = next(iter(part.values())).shape[0] / bsz
            with autocast:
                loss, metrics = objective(model, part)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
            (loss * weight).backward()
            for k, v in metrics.items():
                metrics_sum[k] = metrics_sum.get(k, 0.0) + v * weight
        grad_norm = (
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            if cfg.grad_clip > 0
            else torch.sqrt(sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None))
        )
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens = count_tokens(batch)
        window_tokens += tokens
        total_tokens += tokens
        productive_s += time.perf_counter() - step_t0
        done = step + 1
        if done % cfg.log_every == 0 or done == cfg.steps:
            elapsed = time.perf_counter() - window_start
            tps = window_tokens / max(elapsed, 1e-9)
            seq_len = batch["input_ids"].shape[1] if "input_ids" in batch else 0
            record = {
                "step": float(done),
                "lr": lr,
                "batch_size": float(bsz),
                "grad_norm": float(grad_norm),
                "tokens_per_s": tps,
                "mfu": flops_per_token(model, seq_len) * tps / cfg.peak_flops if seq_len else 0.0,
                **metrics_sum,
            }
            history.append(record)
            log(f"step {done}/{cfg.steps} loss {metrics_sum.get('loss', math.nan):.4f} lr {lr:.2e} "
                f"{tps:,.0f} tok/s")
            if on_metrics is not None:
                on_metrics(record, done)
            window_tokens, window_start = 0, time.perf_counter()
        if checkpoint_dir is not None and (
            done == cfg.steps or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
        ):
            save_checkpoint(
                checkpoint_dir,
                done,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "meta": {"step": done, "torch_rng": torch.get_rng_state(),
                             "samples_seen": samples_before(done, cfg.batch_size, cfg.batch_ramp)},
                },
                keep_last=cfg.keep_last,
            )
        if stop_after is not None and done >= stop_after:
            break
    wall = time.perf_counter() - t0
    model.eval()
    final = dict(history[-1]) if history else {}
    final["goodput"] = productive_s / wall if wall > 0 else 0.0
    return TrainResult(model, history, step + 1 if cfg.steps > start else start, resumed_from, wall, total_tokens, final)


def describe(result: TrainResult) -> dict[str, Any]:
    """Summary metadata of a run for manifests and MLflow."""
    core = getattr(result.model, "backbone", result.model)
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "wall_s": round(result.wall_s, 2),
        "tokens": result.tokens,
        "params": core.num_params() if hasattr(core, "num_params") else None,
        **{f"final_{k}": v for k, v in result.final.items() if k != "step"},
    }
