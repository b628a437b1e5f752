"""The one training loop of the factory (recipe: "Pre-Training Recipe", "Post-training",
"Infrastructure, Scaling, and Efficiency").

Every training stage — pre-training, long context, annealing, experts, reward model, SFT, DPO,
guard classifiers, scaling-law grid runs — is a configuration of ``train``: a model builder, an
objective (``factory.train.losses``), a batch source (``factory.train.data``) and a
``TrainConfig`` (``factory.train.config``: optimizer, schedule and batch ramp, checkpointing,
parallelism). Nothing else
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
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from factory.core.resources import Placement, current, use
from factory.core.stage import MetricsTarget
from factory.train.checkpoint import checkpoint_step, latest_checkpoint, load_checkpoint
from factory.train.config import TrainConfig
from factory.train.schedules import batch_size_at, learning_rate, samples_before

JOURNAL = "journal.jsonl"  # per-step record of a distributed run, written by rank 0 next to its checkpoints


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
    """Every generator's state in types ``torch.load(weights_only=True)`` accepts: numpy's MT19937 key
    (a uint32[624] array) travels as an int64 tensor, so loading a checkpoint unpickles no code."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    numpy_state = (kind, torch.from_numpy(key.astype(np.int64)), int(pos), int(has_gauss), float(gauss))
    state = {"torch": torch.get_rng_state(), "numpy": numpy_state, "python": random.getstate()}
    if use_gpu:
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, gauss))
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
    metrics_target: MetricsTarget | None = None  # where rank 0 of a distributed run logs its records
    placement: Placement = field(default_factory=current)  # the stage's, installed in each Ray Train worker


@dataclass
class _Outcome:
    model: nn.Module
    history: list[dict[str, float]]
    steps: int
    resumed_from: int | None
    productive_s: float
    tokens: int


def _loop(job: _Job, log: Callable[[str], None],
          on_metrics: Callable[[dict[str, float], int], None] | None) -> _Outcome:
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
    first_local = batch_size_at(0, cfg.batch_size, cfg.schedule.batch_ramp) // world
    micro = cfg.parallelism.micro_batch_size
    engine = make_engine(cfg, model, job.objective, min(micro or first_local, first_local))
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
        lr = learning_rate(step, kind=cfg.schedule.kind, peak=cfg.lr, floor=cfg.schedule.min_lr,
                           warmup=cfg.schedule.warmup_steps, total=cfg.steps)
        engine.set_lr(lr)
        bsz = batch_size_at(step, cfg.batch_size, cfg.schedule.batch_ramp)
        local = bsz // engine.world_size
        batch = job.data.batch(samples_before(step, cfg.batch_size, cfg.schedule.batch_ramp) + rank * local, local)
        if engine.device.type != "cpu":
            batch = {k: v.to(engine.device, non_blocking=True) for k, v in batch.items()}
        parts = _split(batch, min(micro or local, local))
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
        grad_norm = engine.step(cfg.optimizer.grad_clip)
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
                "mfu": (flops_per_token(engine.model, seq_len) * tps / (cfg.peak_flops * engine.world_size)
                        if seq_len else 0.0),
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
            done == cfg.steps or (cfg.checkpoint.every and done % cfg.checkpoint.every == 0)
        ):
            meta = {
                "step": done,
                "samples_seen": samples_before(done, cfg.batch_size, cfg.schedule.batch_ramp),
                "lr": lr,
                "world_size": engine.world_size,
                "rng": _rng_state(engine.device.type == "cuda"),
            }
            engine.save(job.checkpoint_dir, done, meta, cfg.checkpoint.keep_last)
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


def _streamer(target: MetricsTarget) -> Callable[[dict[str, float], int], None]:
    """Rank 0's ``on_metrics`` in a distributed run: each record to the MLflow run as it is made.
    Logging is best effort: a tracking server that fails does not stop training (the first failure
    is printed, later records are dropped; the run's history still has them all at the end)."""
    broken: list[str] = []

    def stream(record: dict[str, float], step: int) -> None:
        if broken:
            return
        try:
            target.log({k: v for k, v in record.items() if k != "step"}, step)
        except Exception as err:  # metrics must never end a training run
            broken.append(repr(err))
            _rank0_print(f"metrics streaming to MLflow run {target.run_id} stopped: {err!r}")

    return stream


def _worker(job: _Job) -> None:
    """Entry point of each Ray Train worker."""
    from factory.core.environment import apply_env, training_env

    apply_env(training_env(job.placement.use_gpu))
    with use(job.placement):
        _loop(job, _rank0_print, _streamer(job.metrics_target) if job.metrics_target is not None else None)


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
    metrics_target: MetricsTarget | None = None,
) -> TrainResult:
    """Run (or resume) one training run and return the trained model.

    ``init_state`` seeds the weights of a fresh run (a pre-trained checkpoint; ``strict_init=False``
    lets a scorer head start from a decoder's weights). ``checkpoint_dir`` enables checkpoints and
    resumption. ``stop_after`` ends the run early after that step (to simulate an interruption).

    With ``parallelism.num_workers > 1`` the loop runs on Ray Train workers: ``build_model``, ``objective``
    and ``data`` must pickle, workers print progress (Ray forwards it to this console), and
    ``on_metrics`` receives the records once the run is done; with ``metrics_target`` rank 0 also
    logs each record there (an MLflow run, names prefixed by the target's prefix, metric step = the
    record's step) while the run trains. A restarted worker group logs again the steps it
    recomputes. Single-process runs ignore ``metrics_target``: ``on_metrics`` is called live there.
    ``kill_at`` (distributed only, for fault-tolerance tests and ``factory bench faults``) makes the
    last worker SIGKILL itself the first time the run completes each of those steps.
    """
    job = _Job(cfg, build_model, objective, data, init_state, strict_init, checkpoint_dir, stop_after, tuple(kill_at),
               metrics_target)
    if cfg.parallelism.num_workers == 1:
        if kill_at:
            raise ValueError("kill_at needs a distributed run (num_workers > 1): it kills a worker process")
        t0 = time.perf_counter()
        out = _loop(job, log, on_metrics)
        wall = time.perf_counter() - t0
        final = dict(out.history[-1]) if out.history else {}
        final["goodput"] = out.productive_s / wall if wall > 0 else 0.0
        # Stages evaluate and save the result on the CPU, as they get it from a distributed run.
        return TrainResult(out.model.cpu(), out.history, out.steps, out.resumed_from, wall, out.tokens, final)
    with contextlib.ExitStack() as stack:
        root = checkpoint_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="factory-train-")))
        return _train_distributed(job, root, log, on_metrics)


def _train_distributed(
    job: _Job, root: Path, log: Callable[[str], None], on_metrics: Callable[[dict[str, float], int], None] | None
) -> TrainResult:
    from factory.train.engines import run_on_ray

    par = job.cfg.parallelism
    root.mkdir(parents=True, exist_ok=True)
    job.checkpoint_dir = root
    before = latest_checkpoint(root)
    resumed_from = checkpoint_step(before) if before is not None else None
    (root / JOURNAL).unlink(missing_ok=True)
    log(f"training on {par.num_workers} Ray Train workers ({par.backend}"
        f"{f', ZeRO-{par.zero_stage}' if par.backend == 'deepspeed' else ''})")
    t0 = time.perf_counter()
    run_on_ray(par, functools.partial(_worker, job), root / "ray")
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
