"""``TrainConfig``: the settings of one training run, in sections (recipe: "Pre-Training Recipe",
"Infrastructure, Scaling, and Efficiency").

The three numbers every run states — ``steps``, ``batch_size`` and the peak ``lr`` — are required
and sit at the top with the other run-level settings. Everything else lives in a section with
defaults, so a profile names a section only to change it::

    train: {steps: 600, batch_size: 16, lr: 3.0e-3, schedule: {warmup_steps: 30, min_lr: 3.0e-4},
            checkpoint: {every: 200}}
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from factory.core.stage import StageConfig
from factory.train.schedules import ScheduleKind


class OptimizerConfig(StageConfig):
    """AdamW and gradient clipping (the learning rate itself is the schedule's, see ``TrainConfig.lr``)."""

    weight_decay: float = Field(0.1, description="AdamW decoupled weight decay on matrices.")
    betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW betas.")
    grad_clip: float = Field(1.0, description="Global gradient-norm clip; 0 disables it.")


class ScheduleConfig(StageConfig):
    """Learning-rate schedule (warmup, then decay from ``TrainConfig.lr``) and batch-size ramp."""

    kind: ScheduleKind = Field("cosine", description="cosine (to min_lr), linear_to_zero (annealing) or constant.")
    warmup_steps: int = Field(0, description="Linear warmup steps.")
    min_lr: float = Field(0.0, description="Floor of the cosine schedule.")
    batch_ramp: list[tuple[int, int]] = Field(
        default_factory=list, description="Batch-size ramp: [(until_step, batch_size), ...], then batch_size."
    )


class CheckpointConfig(StageConfig):
    """When and how the run writes checkpoints (into the stage's resumable work folder)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)

    every: int = Field(0, description="Steps between checkpoints; 0 = only at the end.")
    keep_last: int = Field(2, description="Checkpoints kept on disk.")
    async_: bool = Field(
        False, alias="async", description="Write checkpoints on a background thread from a CPU copy (single/ddp)."
    )


class ParallelismConfig(StageConfig):
    """Backend and workers of the run, and how a failed worker group is restarted. The device and what
    each worker asks Ray for are the stage's placement (``runtime.accelerator``, ``runtime.resources``),
    not part of the run's config."""

    backend: Literal["single", "ddp", "deepspeed"] = Field(
        "single", description="single process; Ray Train DDP; or DeepSpeed ZeRO inside Ray Train workers."
    )
    num_workers: int = Field(
        1, ge=1, description="Data-parallel workers; 1 runs in the calling process, never through Ray Train."
    )
    micro_batch_size: int = Field(
        0, description="Samples per forward/backward on one worker; 0 means its whole share of the batch at once."
    )
    zero_stage: int = Field(
        0, ge=0, le=3,
        description="DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also parameters.",
    )
    cpu_offload: bool = Field(False, description="DeepSpeed: keep optimizer state and step on the CPU (ZeRO-Offload).")
    max_failures: int = Field(
        0, ge=-1, description="Worker-group restarts Ray Train allows after failures (-1 = unlimited)."
    )

    @model_validator(mode="after")
    def _check(self) -> ParallelismConfig:
        if self.num_workers > 1 and self.backend == "single":
            raise ValueError("backend=single runs one worker; use backend=ddp or deepspeed for num_workers > 1")
        return self


class TrainConfig(StageConfig):
    """Optimization and run-control settings of one training run."""

    steps: int = Field(description="Optimizer steps of the run.")
    batch_size: int = Field(description="Global batch size (samples per optimizer step) after any ramp.")
    lr: float = Field(description="Peak learning rate.")
    seed: int = Field(0, description="Seed of model init and of the sample order.")
    precision: Literal["fp32", "bf16"] = Field(
        "fp32",
        description="bf16: autocast with fp32 master weights where the device has native bf16 (else fp32, logged); "
        "fp32.",
    )
    log_every: int = Field(10, description="Steps between metric reports.")
    compile: bool = Field(
        False,
        description="torch.compile the model and objective (fuses elementwise work; costs a one-off compile of tens "
        "of seconds).",
    )
    kernels: bool = Field(
        False, description="Swap RMSNorm/SwiGLU for the Triton kernels (factory.model.convert); needs CUDA."
    )
    peak_flops: float = Field(150e9, description="Peak FLOP/s of one worker's device, for MFU.")
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig, description="AdamW and gradient clipping.")
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig, description="LR schedule and batch-size ramp.")
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="Checkpoint cadence and retention."
    )
    parallelism: ParallelismConfig = Field(
        default_factory=ParallelismConfig, description="Backend, workers, ZeRO and worker-group restarts."
    )

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        sizes = [self.batch_size] + [size for _, size in self.schedule.batch_ramp]
        workers = self.parallelism.num_workers
        if any(size % workers for size in sizes):
            raise ValueError(f"every batch size {sizes} must be divisible by num_workers={workers}")
        return self
