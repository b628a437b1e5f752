"""How a stage trains: the one call between a stage and the one trainer (docs/architecture.md,
"Model and trainer"; recipe: "Pre-Training Recipe", "Post-training").

Every training stage (base, long-context increments, annealing and its valuation runs, experts,
reward model, SFT, DPO, Llama Guard, Prompt Guard) and the short runs of the mix experiments and
the IsoFLOP grid call ``train_stage``; it alone calls ``factory.train.trainer.train``. It wires the
stage context in: checkpoints go to ``ctx.checkpoint_dir(name)`` (under the artifact's work folder,
so an interrupted stage resumes), progress lines to ``ctx.log`` and curves to ``ctx.log_metrics``.
A distributed run (``parallelism.num_workers > 1``) of a stage whose context has a
``metrics_target`` (a job's MLflow run) streams its curves there from rank 0 while it trains; the
context's history gets them at the end, without sending them twice.

Curve names: a run's metrics are logged as ``<name>/<metric>`` (several DPO runs share one stage;
the reward model and SFT runs follow the same rule), unless the caller gives another
``metrics_prefix``: pre-training and guard stages log their one run's curves unprefixed (``loss``,
``lr``, ...; MLflow shows them as ``train/loss``). The step is the metric's step, not a metric.
Runs trained where no stage context exists (the grid tasks of the mix experiments and the IsoFLOP
grid, the annealing valuation runs) hand their records back, and ``log_history`` files them under
the same rule, so every run a stage trains has its curves in the stage's MLflow run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from factory.core.stage import StageContext
from factory.train.config import TrainConfig
from factory.train.data import Examples
from factory.train.trainer import BatchSource, Objective, TrainResult, train


def train_stage(
    name: str,
    cfg: TrainConfig,
    build_model: Callable[[], nn.Module],
    objective: Objective,
    data: BatchSource,
    ctx: StageContext,
    *,
    init_state: Mapping[str, torch.Tensor] | None = None,
    strict_init: bool = True,
    stop_after: int | None = None,
    checkpoints: bool = True,
    metrics_prefix: str | None = None,
) -> TrainResult:
    """Run (or resume) the stage's training run ``name`` and return the trained model.

    ``init_state`` seeds the weights of a fresh run (``strict_init=False`` lets a scorer head start
    from a decoder's weights); ``stop_after`` ends the run after that step (the long-context gates
    train in chunks). ``checkpoints=False`` is for short throwaway runs (mix experiments, IsoFLOP
    grid, annealing valuation runs): no checkpoint folder, nothing to resume. ``metrics_prefix``
    replaces the ``<name>/`` prefix of the curves ("" logs them unprefixed).
    """
    prefix = f"{name}/" if metrics_prefix is None else metrics_prefix
    examples = f"{len(data.examples)} examples, " if isinstance(data, Examples) else ""
    until = f" (until step {stop_after})" if stop_after is not None else ""
    ctx.log(f"{name}: {examples}{cfg.steps} steps of batch {cfg.batch_size}{until}")

    target = ctx.metrics_target.with_prefix(prefix) if ctx.metrics_target is not None else None
    streamed = target is not None and cfg.parallelism.num_workers > 1

    def on_metrics(record: dict[str, float], step: int) -> None:
        _log_record(ctx, prefix, record, step, sink=not streamed)

    return train(cfg, build_model, objective, data, init_state=init_state, strict_init=strict_init,
                 checkpoint_dir=ctx.checkpoint_dir(name) if checkpoints else None, log=ctx.log,
                 on_metrics=on_metrics, stop_after=stop_after, metrics_target=target if streamed else None)


def log_history(name: str, history: Sequence[Mapping[str, float]], ctx: StageContext) -> None:
    """File the records of a finished run ``name`` (``TrainResult.history``) as the stage's curves
    ``<name>/<metric>``, each at its own step, as ``train_stage`` does for the runs it trains."""
    for record in history:
        _log_record(ctx, f"{name}/", record, int(record["step"]))


def _log_record(ctx: StageContext, prefix: str, record: Mapping[str, float], step: int, *, sink: bool = True) -> None:
    ctx.log_metrics({f"{prefix}{k}": v for k, v in record.items() if k != "step"}, step, sink=sink)
