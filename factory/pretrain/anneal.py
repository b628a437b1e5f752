"""``annealed_checkpoint``: the LR falls linearly to 0 on a mix that upsamples high-quality data, at
the long-context length (recipe: "Annealing"); optionally the same annealing values a small dataset
(30 % new data / 70 % default mix against an anneal on the default mix alone).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from factory.core.stage import StageConfig, StageContext
from factory.eval.perplexity import val_losses
from factory.model.checkpoint_io import save_model
from factory.model.llama import ModelArgs, Transformer
from factory.pretrain.continued import branch_from, stage_inputs, write_history
from factory.train.lm_runs import load_streams, mix_data, normalize, run_summary, scratch_dir, train_lm
from factory.train.token_shards import HIGH_QUALITY
from factory.train.trainer import TrainConfig


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
    def _check(self) -> "AnnealConfig":
        if self.train.schedule.kind != "linear_to_zero":
            raise ValueError(f"annealing needs schedule linear_to_zero, got {self.train.schedule.kind}")
        if not 0.0 <= self.high_quality_weight < 1.0:
            raise ValueError("high_quality_weight must be in [0, 1)")
        return self




def anneal_mix(base: Mapping[str, float], upsample: Mapping[str, float], high_quality_weight: float) -> dict[str, float]:
    """The chosen mix with domain multipliers applied (domains absent from it are skipped: a small
    corpus may lack one), plus a high-quality share."""
    mix = normalize({k: w * upsample.get(k, 1.0) for k, w in base.items()})
    mix = {k: w * (1.0 - high_quality_weight) for k, w in mix.items()}
    if high_quality_weight > 0:
        mix[HIGH_QUALITY] = high_quality_weight
    return mix


def run_annealed_checkpoint(cfg: AnnealConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = stage_inputs(inputs)
    args, state = branch_from(inputs["long_context_checkpoint"], cfg.seq_len)
    seq_len = args.max_seq_len
    weights = anneal_mix(mix["weights"], cfg.upsample, cfg.high_quality_weight)
    names = sorted(set(weights) | set(mix["weights"]) | ({cfg.value_dataset} - {""}))
    train_streams = load_streams(inputs["data_mix"], names, "train")
    val_streams = load_streams(inputs["data_mix"], list(mix["weights"]), "validation")
    ctx.log(f"annealing at length {seq_len} on {weights}")

    start = Transformer(args)
    start.load_state_dict(state)
    before = val_losses(start, val_streams, seq_len, info.eot_id, cfg.eval_windows)
    data = mix_data(train_streams, weights, seq_len, info.eot_id, cfg.train.seed)
    with scratch_dir(ctx, "anneal") as ckpt:
        result = train_lm(cfg.train, args, data, init_state=state, checkpoint_dir=ckpt, log=ctx.log,
                          on_metrics=ctx.log_metrics)
    after = val_losses(result.model, val_streams, seq_len, info.eot_id, cfg.eval_windows)
    meta: dict[str, Any] = {
        "seq_len": seq_len,
        "mix": weights,
        "upsample_skipped": sorted(set(cfg.upsample) - set(mix["weights"])),
        **run_summary(result, cfg.train, seq_len),
        "val_loss_before": before,
        "val_loss": after,
        "val_perplexity": round(float(np.exp(after["mean"])), 3),
    }
    if cfg.value_dataset:
        meta["dataset_valuation"] = _value_dataset(cfg, args, state, mix["weights"], train_streams, val_streams,
                                                   info.eot_id, ctx)
    save_model(result.model, out, extra={"stage": "annealed_checkpoint", "seq_len": seq_len, "mix": weights})
    write_history(out, result.history)
    (out / "anneal.json").write_text(json.dumps(meta, indent=1))
    return meta


def _value_dataset(cfg: AnnealConfig, args: ModelArgs, state, default_mix: Mapping[str, float],
                   train_streams: Mapping[str, np.ndarray], val_streams: Mapping[str, np.ndarray], eot_id: int,
                   ctx: StageContext) -> dict[str, Any]:
    """Recipe: anneal on value_weight of the new dataset + the rest default mix, and compare with
    the same anneal on the default mix alone; the val-loss delta is the dataset's value."""
    name = cfg.value_dataset
    if name not in train_streams or len(train_streams[name]) <= args.max_seq_len:
        raise ValueError(f"value_dataset {name!r} has no training window of {args.max_seq_len} tokens")
    vcfg = cfg.train.model_copy(update={"steps": cfg.value_steps or cfg.train.steps,
                                        "checkpoint": cfg.train.checkpoint.model_copy(update={"every": 0})})
    with_new = {k: w * (1.0 - cfg.value_weight) for k, w in normalize(default_mix).items()}
    with_new[name] = with_new.get(name, 0.0) + cfg.value_weight
    runs = {}
    for label, weights in (("default_mix", dict(default_mix)), ("with_dataset", with_new)):
        data = mix_data(train_streams, weights, args.max_seq_len, eot_id, vcfg.seed)
        res = train_lm(vcfg, args, data, init_state=state, log=ctx.log)
        runs[label] = {"mix": normalize(weights),
                       "val_loss": val_losses(res.model, val_streams, args.max_seq_len, eot_id, cfg.eval_windows)}
    delta = {k: round(runs["with_dataset"]["val_loss"][k] - runs["default_mix"]["val_loss"][k], 5)
             for k in runs["default_mix"]["val_loss"]}
    ctx.log(f"valuing {name!r}: val-loss delta {delta}")
    return {"dataset": name, "weight": cfg.value_weight, "steps": vcfg.steps, "runs": runs, "val_loss_delta": delta}
