"""The one training loop of the factory (recipe: "Pre-Training Recipe", "Post-training",
"Infrastructure, Scaling, and Efficiency").

Every training stage — pre-training, long context, annealing, experts, reward model, SFT, DPO,
guard classifiers, scaling-law grid runs — is a configuration of ``train``: a model builder, an
objective (``factory.train.losses``), a batch source (``factory.train.data``) and a
``TrainConfig`` (schedule, batch ramp, clipping, precision, checkpointing, backend). Nothing else
loops. The backend (one process, Ray Train DDP, DeepSpeed ZeRO) is an engine beside the loop
(``factory.train.engines``); the loop is the same for all of them.

Resumption is exact: checkpoints hold model, optimizer, RNG and the data position (samples
consumed), the LR is a pure function of the step, and batches are a pure function of the data
position, so a resumed run continues the same loss curve. In a data-parallel run rank r reads
the r-th slice of the same global batch, so the global batch does not depend on the worker count.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from pydantic import Field, model_validator
from torch import nn

from factory.core.stage import StageConfig
from factory.train.checkpoint import checkpoint_step, latest_checkpoint, load_checkpoint
from factory.train.schedules import ScheduleKind, batch_size_at, learning_rate, samples_before

JOURNAL = "journal.jsonl"  # per-step record of a distributed run, written by rank 0 next to its checkpoints


class TrainConfig(StageConfig):
    """Optimization and run-control settings of one training run."""

    steps: int = Field(description="Optimizer steps of the run.")
    batch_size: int = Field(description="Global batch size (samples per optimizer step) after any ramp.")
    micro_batch_size: int = Field(0, description="Samples per forward/backward on one worker; 0 means its whole share of the batch at once.")
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
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="bf16: autocast with fp32 master weights where the device has native bf16 (else fp32, logged); fp32."
    )
    seed: int = Field(0, description="Seed of model init and of the sample order.")
    log_every: int = Field(10, description="Steps between metric reports.")
    checkpoint_every: int = Field(0, description="Steps between checkpoints; 0 = only at the end.")
    keep_last: int = Field(2, description="Checkpoints kept on disk.")
    async_checkpoint: bool = Field(False, description="Write checkpoints on a background thread from a CPU copy (single/ddp).")
    kernels: bool = Field(
        False, description="Swap RMSNorm/SwiGLU for the Triton kernels (factory.model.convert); needs CUDA."
    )
    compile: bool = Field(
        False, description="torch.compile the model and objective (fuses elementwise work; costs a one-off compile of tens of seconds)."
    )
    peak_flops: float = Field(150e9, description="Peak FLOP/s of one worker's device, for MFU.")
    backend: Literal["single", "ddp", "deepspeed"] = Field(
        "single", description="single process; Ray Train DDP; or DeepSpeed ZeRO inside Ray Train workers."
    )
    num_workers: int = Field(1, ge=1, description="Data-parallel workers; 1 runs in the calling process, never through Ray Train.")
    use_gpu: bool = Field(False, description="One GPU per worker (nccl) instead of CPU workers (gloo).")
    zero_stage: int = Field(0, ge=0, le=3, description="DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also parameters.")
    cpu_offload: bool = Field(False, description="DeepSpeed: keep optimizer state and step on the CPU (ZeRO-Offload).")
    max_failures: int = Field(0, ge=-1, description="Worker-group restarts Ray Train allows after failures (-1 = unlimited).")

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if self.num_workers > 1 and self.backend == "single":
            raise ValueError("backend=single runs one worker; use backend=ddp or deepspeed for num_workers > 1")
        sizes = [self.batch_size] + [size for _, size in self.batch_ramp]
        if any(size % self.num_workers for size in sizes):
            raise ValueError(f"every batch size {sizes} must be divisible by num_workers={self.num_workers}")
        return self


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
    lost_steps: int = 0  # steps computed but thrown away by a restart from an older checkpoint
    restarts: int = 0  # times a distributed run's worker group was restarted after a failure


def count_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens a batch feeds the model: every ``*_ids`` field except document ids."""
    return sum(v.numel() for k, v in batch.items() if k.endswith("_ids") and k != "doc_ids")


def flops_per_token(model: nn.Module, seq_len: int) -> float:
    core = getattr(model, "backbone", model)
    return core.flops_per_token(seq_len) if hasattr(core, "flops_per_token") else 0.0


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 matmuls in hardware. CPUs need AVX512-BF16 or AMX: without
    them (e.g. AVX2-only) oneDNN falls back to a reference path ~100x slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _split(batch: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    n = next(iter(batch.values())).shape[0]
    return [{k: v[i : i + size] for k, v in batch.items()} for i in range(0, n, size)]


def _rng_state(use_gpu: bool) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if use_gpu:
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"])


@dataclass
class _Job:
    """Everything one worker needs to run the loop; pickled to Ray workers in distributed runs."""

    cfg: TrainConfig
    build_model: Callable[[], nn.Module]
    objective: Objective
    data: BatchSource
    init_state: dict[str, torch.Tensor] | None
    strict_init: bool
    checkpoint_dir: Path | None
    stop_after: int | None
    kill_at: tuple[int, ...] = ()


@dataclass
class _Outcome:
    model: nn.Module
    history: list[dict[str, float]]
    steps: int
    resumed_from: int | None
    productive_s: float
    tokens: int


def _loop(job: _Job, log: Callable[[str], None], on_metrics: Callable[[dict[str, float], int], None] | None) -> _Outcome:
    """The training loop, run by every worker of a run (rank 0 alone logs, journals and kills nothing)."""
    from factory.train.engines import make_engine

    cfg = job.cfg
    torch.manual_seed(cfg.seed)
    model = job.build_model()
    if job.init_state is not None:
        missing, unexpected = model.load_state_dict(job.init_state, strict=job.strict_init)
        if unexpected:
            raise ValueError(f"initial weights have keys the model lacks: {unexpected[:5]}")
        if missing:
            log(f"fresh parameters not in the initial weights: {missing}")
    if cfg.kernels:
        from factory.model.convert import apply_kernels

        log(f"Triton kernels swapped into {apply_kernels(model, True)} modules")
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    first_local = batch_size_at(0, cfg.batch_size, cfg.batch_ramp) // world
    engine = make_engine(cfg, model, job.objective, min(cfg.micro_batch_size or first_local, first_local))
    rank, lead = engine.rank, engine.rank == 0
    say = log if lead else (lambda _msg: None)

    start, resumed_from = 0, None
    if job.checkpoint_dir is not None and (ckpt := latest_checkpoint(job.checkpoint_dir)) is not None:
        meta = engine.load(ckpt)
        _set_rng_state(meta["rng"])
        start = resumed_from = meta["step"]
        say(f"resumed from {ckpt.name} (step {start}, {meta['samples_seen']} samples seen)")
    journal = (
        (job.checkpoint_dir / JOURNAL).open("a") if lead and world > 1 and job.checkpoint_dir is not None else None
    )
    if journal is not None:
        journal.write(json.dumps({"start": start}) + "\n")
        journal.flush()

    bf16 = cfg.precision == "bf16" and bf16_native(engine.device)
    if cfg.precision == "bf16" and not bf16:
        say(f"bf16 requested, but this {engine.device.type} has no native bf16 arithmetic: training in fp32")
    autocast = torch.autocast(engine.device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    history: list[dict[str, float]] = []
    window_tokens, window_start, productive_s, total_tokens = 0, time.perf_counter(), 0.0, 0
    run_t0 = time.perf_counter()
    engine.wrapped.train()
    done = start
    for step in range(start, cfg.steps):
        step_t0 = time.perf_counter()
        lr = learning_rate(step, kind=cfg.schedule, peak=cfg.lr, floor=cfg.min_lr, warmup=cfg.warmup_steps, total=cfg.steps)
        engine.set_lr(lr)
        bsz = batch_size_at(step, cfg.batch_size, cfg.batch_ramp)
        local = bsz // engine.world_size
        batch = job.data.batch(samples_before(step, cfg.batch_size, cfg.batch_ramp) + rank * local, local)
        if engine.device.type != "cpu":
            batch = {k: v.to(engine.device, non_blocking=True) for k, v in batch.items()}
        parts = _split(batch, min(cfg.micro_batch_size or local, local))
        metrics_sum: dict[str, float] = {}
        for i, part in enumerate(parts):
            weight = next(iter(part.values())).shape[0] / local
            with engine.micro_step(last=i == len(parts) - 1):
                with autocast:
                    loss, metrics = engine.forward(part)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"non-finite loss {loss.item()} at step {step}")
                engine.backward(loss * weight)
            for k, v in metrics.items():
                metrics_sum[k] = metrics_sum.get(k, 0.0) + v * weight
        grad_norm = engine.step(cfg.grad_clip)
        tokens = count_tokens(batch) * engine.world_size
        window_tokens += tokens
        total_tokens += tokens
        step_s = time.perf_counter() - step_t0
        productive_s += step_s
        done = step + 1
        if journal is not None:
            journal.write(json.dumps({"step": done, "dt": step_s, "tokens": tokens}) + "\n")
        if done % cfg.log_every == 0 or done == cfg.steps:
            metrics_mean = engine.reduce(metrics_sum)
            elapsed = time.perf_counter() - window_start
            tps = window_tokens / max(elapsed, 1e-9)
            seq_len = batch["input_ids"].shape[1] if "input_ids" in batch else 0
            record = {
                "step": float(done),
                "lr": lr,
                "batch_size": float(bsz),
                "grad_norm": grad_norm,
                "tokens_per_s": tps,
                "mfu": flops_per_token(engine.model, seq_len) * tps / (cfg.peak_flops * engine.world_size) if seq_len else 0.0,
                **metrics_mean,
            }
            history.append(record)
            eta = (time.perf_counter() - run_t0) / (done - start) * (cfg.steps - done)
            say(f"step {done}/{cfg.steps} loss {metrics_mean.get('loss', math.nan):.4f} lr {lr:.2e} "
                f"{tps:,.0f} tok/s mfu {record['mfu']:.1%} eta {eta:,.0f}s")
            if journal is not None:
                journal.write(json.dumps({"record": record}) + "\n")
            if on_metrics is not None and lead:
                on_metrics(record, done)
            window_tokens, window_start = 0, time.perf_counter()
        if journal is not None:
            journal.flush()
        if job.checkpoint_dir is not None and (
            done == cfg.steps or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0)
        ):
            meta = {
                "step": done,
                "samples_seen": samples_before(done, cfg.batch_size, cfg.batch_ramp),
                "lr": lr,
                "world_size": engine.world_size,
                "rng": _rng_state(cfg.use_gpu),
            }
            engine.save(job.checkpoint_dir, done, meta, cfg.keep_last)
        if done in job.kill_at and rank == engine.world_size - 1 and job.checkpoint_dir is not None:
            _kill_once(job.checkpoint_dir, done)
        if job.stop_after is not None and done >= job.stop_after:
            break
    engine.finish()
    if journal is not None:
        journal.close()
    engine.model.eval()
    return _Outcome(engine.model, history, done, resumed_from, productive_s, total_tokens)


def _kill_once(checkpoint_dir: Path, step: int) -> None:
    """Fault injection: SIGKILL this worker process the first time any attempt of the run reaches ``step``."""
    marker = checkpoint_dir / "faults" / f"kill-{step:08d}"
    if marker.exists():
        return
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    _rank0_print(f"fault injection: killing worker pid {os.getpid()} after step {step}")
    os.kill(os.getpid(), signal.SIGKILL)


def _rank0_print(msg: str) -> None:  # also the fault injector's last words
    # Straight to stderr: Ray Train's patched print() would emit each line twice.
    sys.stderr.write(f"[train] {msg}\n")
    sys.stderr.flush()


def _worker(job: _Job) -> None:
    """Entry point of each Ray Train worker."""
    from factory.core.environment import apply_env, training_env

    apply_env(training_env(job.cfg.use_gpu))
    _loop(job, _rank0_print, None)


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
    kill_at: Sequence[int] = (),
) -> TrainResult:
    """Run (or resume) one training run and return the trained model.

    ``init_state`` seeds the weights of a fresh run (a pre-trained checkpoint; ``strict_init=False``
    lets a scorer head start from a decoder's weights). ``checkpoint_dir`` enables checkpoints and
    resumption. ``stop_after`` ends the run early after that step (to simulate an interruption).

    With ``num_workers > 1`` the loop runs on Ray Train workers: ``build_model``, ``objective``
    and ``data`` must pickle, workers print progress (Ray forwards it to this console), and
    ``on_metrics`` receives the records once the run is done. ``kill_at`` (distributed only, for
    fault-tolerance tests and ``factory bench faults``) makes the last worker SIGKILL itself the
    first time the run completes each of those steps.
    """
    job = _Job(cfg, build_model, objective, data, init_state, strict_init, checkpoint_dir, stop_after, tuple(kill_at))
    if cfg.num_workers == 1:
        if kill_at:
            raise ValueError("kill_at needs a distributed run (num_workers > 1): it kills a worker process")
        t0 = time.perf_counter()
        out = _loop(job, log, on_metrics)
        wall = time.perf_counter() - t0
        final = dict(out.history[-1]) if out.history else {}
        final["goodput"] = out.productive_s / wall if wall > 0 else 0.0
        return TrainResult(out.model, out.history, out.steps, out.resumed_from, wall, out.tokens, final)
    with contextlib.ExitStack() as stack:
        root = checkpoint_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="factory-train-")))
        return _train_distributed(job, root, log, on_metrics)


def _train_distributed(
    job: _Job, root: Path, log: Callable[[str], None], on_metrics: Callable[[dict[str, float], int], None] | None
) -> TrainResult:
    from factory.train.engines import run_on_ray

    cfg = job.cfg
    root.mkdir(parents=True, exist_ok=True)
    job.checkpoint_dir = root
    before = latest_checkpoint(root)
    resumed_from = checkpoint_step(before) if before is not None else None
    (root / JOURNAL).unlink(missing_ok=True)
    log(f"training on {cfg.num_workers} Ray Train workers ({cfg.backend}"
        f"{f', ZeRO-{cfg.zero_stage}' if cfg.backend == 'deepspeed' else ''})")
    t0 = time.perf_counter()
    run_on_ray(cfg, functools.partial(_worker, job), root / "ray")
    wall = time.perf_counter() - t0

    steps_dt: dict[int, float] = {}
    records: dict[int, dict[str, float]] = {}
    executed = starts = total_tokens = 0
    for line in (root / JOURNAL).read_text().splitlines():
        entry = json.loads(line)
        if "start" in entry:
            starts += 1
        elif "record" in entry:
            records[int(entry["record"]["step"])] = entry["record"]
        else:
            executed += 1
            steps_dt[entry["step"]] = entry["dt"]  # a re-run step overwrites its lost attempt
            total_tokens += entry["tokens"]
    ckpt = latest_checkpoint(root)
    if ckpt is None:
        raise RuntimeError(f"distributed run left no intact checkpoint in {root}")
    model = job.build_model()
    model.load_state_dict(load_checkpoint(ckpt)["model"])
    model.eval()
    history = [records[s] for s in sorted(records)]
    if on_metrics is not None:
        for record in history:
            on_metrics(record, int(record["step"]))
    final = dict(history[-1]) if history else {}
    final["goodput"] = sum(steps_dt.values()) / wall if wall > 0 else 0.0
    result = TrainResult(
        model, history, checkpoint_step(ckpt), resumed_from, wall, total_tokens, final,
        lost_steps=executed - len(steps_dt), restarts=max(0, starts - 1),
    )
    log(f"finished at step {result.steps} in {wall:.1f}s: goodput {final['goodput']:.1%}, "
        f"{result.restarts} restarts, {result.lost_steps} lost steps")
    return result


def describe(result: TrainResult) -> dict[str, Any]:
    """Summary metadata of a run for manifests and MLflow."""
    core = getattr(result.model, "backbone", result.model)
    return {
        "steps": result.steps,
        "resumed_from_step": result.resumed_from,
        "wall_s": round(result.wall_s, 2),
        "tokens": result.tokens,
        "params": core.num_params() if hasattr(core, "num_params") else None,
        "lost_steps": result.lost_steps,
        "restarts": result.restarts,
        **{f"final_{k}": v for k, v in result.final.items() if k != "step"},
    }
