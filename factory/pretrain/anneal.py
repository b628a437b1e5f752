"""``annealed_checkpoint`` (recipe: "Annealing"; docs/architecture.md, "The recipe, stage by
stage"): continued pre-training from the long-context checkpoint, at its length, with the LR falling
linearly to 0 on a mix that upsamples high-quality data; optionally the same annealing values a small
dataset (30 % new data / 70 % default mix against an anneal on the default mix alone).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from factory.core.stage import StageConfig, StageContext
from factory.eval.perplexity import val_losses
from factory.pretrain.continued import Continued, continue_pretraining
from factory.train.config import TrainConfig
from factory.train.lm_runs import mix_data, normalize, train_lm
from factory.train.stage_training import log_history
from factory.train.token_shards import HIGH_QUALITY, read_mix


class AnnealConfig(StageConfig):
    """LR annealed linearly to 0 on a mix that upsamples high-quality data."""

    train: TrainConfig = Field(
        TrainConfig(steps=50, batch_size=4, lr=1.0e-3, log_every=25, schedule={"kind": "linear_to_zero"}),
        description="Run settings; schedule must be linear_to_zero.")
    seq_len: int = Field(0, description="Training length; 0 keeps the long-context model's length.")
    upsample: dict[str, float] = Field(
        default_factory=dict, description="Multipliers on the chosen mix's domain weights (e.g. math: 2).")
    high_quality_weight: float = Field(
        0.25, description="Share of the anneal mix drawn from the high-quality stream (top quality scores).")
    eval_windows: int = Field(16, description="Validation windows per domain.")
    value_dataset: str = Field(
        "", description="Stream to value by annealing (empty: skip): new_weight of it vs the default mix alone.")
    value_weight: float = Field(0.3, description="Share of the valued dataset in its anneal (recipe: 30%).")
    value_steps: int = Field(0, description="Steps of each valuation anneal; 0 means train.steps.")

    @model_validator(mode="after")
    def _check(self) -> AnnealConfig:
        if self.train.schedule.kind != "linear_to_zero":
            raise ValueError(f"annealing needs schedule linear_to_zero, got {self.train.schedule.kind}")
        if not 0.0 <= self.high_quality_weight < 1.0:
            raise ValueError("high_quality_weight must be in [0, 1)")
        return self


def anneal_mix(base: Mapping[str, float], upsample: Mapping[str, float],
               high_quality_weight: float) -> dict[str, float]:
    """The chosen mix with domain multipliers applied (domains absent from it are skipped: a small
    corpus may lack one), plus a high-quality share."""
    mix = normalize({k: w * upsample.get(k, 1.0) for k, w in base.items()})
    mix = {k: w * (1.0 - high_quality_weight) for k, w in mix.items()}
    if high_quality_weight > 0:
        mix[HIGH_QUALITY] = high_quality_weight
    return mix


def run_annealed_checkpoint(cfg: AnnealConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    base_mix = read_mix(inputs["data_mix"])["weights"]
    weights = anneal_mix(base_mix, cfg.upsample, cfg.high_quality_weight)
    train_streams = sorted(set(weights) | set(base_mix) | ({cfg.value_dataset} - {""}))
    run = continue_pretraining("anneal", cfg, cfg.seq_len, inputs, out, ctx, upstream="long_context_checkpoint",
                               weights=weights, train_streams=train_streams, val_streams=list(base_mix),
                               model_extra={"stage": "annealed_checkpoint"})
    meta: dict[str, Any] = {
        "seq_len": run.seq_len,
        "mix": weights,
        "upsample_skipped": sorted(set(cfg.upsample) - set(base_mix)),
        **run.summary,
        "val_loss_before": run.val_loss_before,
        "val_loss": run.val_loss,
        "val_perplexity": run.val_perplexity,
    }
    if cfg.value_dataset:
        meta["dataset_valuation"] = _value_dataset(cfg, run, base_mix, ctx)
    (out / "anneal.json").write_text(json.dumps(meta, indent=1))
    return meta


def _value_dataset(cfg: AnnealConfig, run: Continued, default_mix: Mapping[str, float],
                   ctx: StageContext) -> dict[str, Any]:
    """Recipe: anneal on value_weight of the new dataset + the rest default mix, and compare with
    the same anneal on the default mix alone; the val-loss delta is the dataset's value."""
    name, args, streams = cfg.value_dataset, run.args, run.streams
    if name not in streams.train or len(streams.train[name]) <= args.max_seq_len:
        raise ValueError(f"value_dataset {name!r} has no training window of {args.max_seq_len} tokens")
    vcfg = cfg.train.model_copy(update={"steps": cfg.value_steps or cfg.train.steps,
                                        "checkpoint": cfg.train.checkpoint.model_copy(update={"every": 0})})
    with_new = {k: w * (1.0 - cfg.value_weight) for k, w in normalize(default_mix).items()}
    with_new[name] = with_new.get(name, 0.0) + cfg.value_weight
    runs = {}
    for label, weights in (("default_mix", dict(default_mix)), ("with_dataset", with_new)):
        data = mix_data(streams.train, weights, args.max_seq_len, run.eot_id, vcfg.seed)
        res = train_lm(vcfg, args, data, init_state=run.init_state, log=ctx.log)
        log_history(f"valuation/{label}", res.history, ctx)
        runs[label] = {"mix": normalize(weights),
                       "val_loss": val_losses(res.model, streams.val, args.max_seq_len, run.eot_id, cfg.eval_windows)}
    delta = {k: round(runs["with_dataset"]["val_loss"][k] - runs["default_mix"]["val_loss"][k], 5)
             for k in runs["default_mix"]["val_loss"]}
    ctx.log(f"valuing {name!r}: val-loss delta {delta}")
    return {"dataset": name, "weight": cfg.value_weight, "steps": vcfg.steps, "runs": runs, "val_loss_delta": delta}
