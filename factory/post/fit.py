"""How post-training stages call the one trainer (``factory.train.trainer.train``).

Reward model, SFT and DPO differ only in the model they build, the objective and the examples;
this helper wires the stage context in: checkpoints go to ``ctx.work_dir/<name>`` so an
interrupted stage resumes, progress lines go to ``ctx.log`` and curves to ``ctx.log_metrics``
under a ``<name>/`` prefix (several DPO runs share one stage).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from factory.core.stage import StageContext
from factory.train.data import Examples
from factory.train.trainer import Objective, TrainConfig, TrainResult, train


def fit(
    name: str,
    cfg: TrainConfig,
    build_model: Callable[[], nn.Module],
    objective: Objective,
    examples: Sequence[Mapping[str, Any]],
    pad_id: int,
    ctx: StageContext,
    *,
    init_state: dict[str, torch.Tensor] | None,
    strict_init: bool = True,
) -> TrainResult:
    checkpoint_dir = ctx.work_dir / name if ctx.work_dir is not None else None
    ctx.log(f"{name}: {len(examples)} examples, {cfg.steps} steps of batch {cfg.batch_size}")

    def on_metrics(record: dict[str, float], step: int) -> None:
        ctx.log_metrics({f"{name}/{k}": v for k, v in record.items() if k != "step"}, step)

    return train(cfg, build_model, objective, Examples(examples, pad_id, seed=cfg.seed), init_state=init_state,
                 strict_init=strict_init, checkpoint_dir=checkpoint_dir, log=ctx.log, on_metrics=on_metrics)
