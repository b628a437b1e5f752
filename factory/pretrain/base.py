"""``base_checkpoint``: initial pre-training from scratch on the chosen data mix (recipe:
"Initial Pre-Training"): AdamW, linear warmup + cosine decay to a floor, batch-size ramp, packed
sequences with document masking, GQA and RoPE θ = 500 000; the model size comes from the config or
from the scaling-law fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.eval.perplexity import val_losses
from factory.model.checkpoint_io import save_model
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.pretrain.continued import stage_inputs, write_history
from factory.train.lm_runs import load_streams, mix_data, run_summary, scratch_dir, train_lm
from factory.train.trainer import TrainConfig


class PretrainConfig(StageConfig):
    """Initial pre-training of the base model on the chosen data mix."""

    flavor: str = Field(
        "tiny", description="Model flavor (factory.model.flavors) used when size_from is 'config' (tiny: ~1.8M params "
        "with a 4096 vocab); fit.json's recommendation is recorded beside it either way.")
    size_from: Literal["config", "scaling_law_fit"] = Field(
        "config", description="Take the flavor from this config or from scaling_law_fit's recommendation.")
    rope_theta: float = Field(500_000.0, description="RoPE base frequency (Llama 3: 500 000).")
    seq_len: int = Field(128, description="Training sequence length (packed windows, document-masked).")
    train: TrainConfig = Field(
        TrainConfig(steps=600, batch_size=16, lr=3.0e-3, log_every=50, checkpoint={"every": 200},
                    schedule={"warmup_steps": 30, "min_lr": 3.0e-4, "batch_ramp": [(100, 8)]}),
        description="Optimizer, cosine schedule, batch ramp and run control.")
    eval_windows: int = Field(32, description="Validation windows per domain for the final losses.")


def _recommended_flavor(fit_dir: Path) -> str:
    from factory.scaling.isoflop import FIT_FILE

    return json.loads((fit_dir / FIT_FILE).read_text())["recommendation"]["flavor"]


def run_base_checkpoint(cfg: PretrainConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = stage_inputs(inputs)
    flavor = cfg.flavor if cfg.size_from == "config" else _recommended_flavor(inputs["scaling_law_fit"])
    args = model_args(flavor, info.vocab_size, rope_theta=cfg.rope_theta, max_seq_len=cfg.seq_len)
    weights = mix["weights"]
    train_streams = load_streams(inputs["data_mix"], list(weights), "train")
    val_streams = load_streams(inputs["data_mix"], list(weights), "validation")
    data = mix_data(train_streams, weights, cfg.seq_len, info.eot_id, cfg.train.seed)
    ctx.log(f"base pre-training: flavor {flavor} ({cfg.size_from}), mix {weights}, {cfg.train.steps} steps")
    torch.manual_seed(cfg.train.seed)  # the trainer seeds the same way: this is the run's initial model
    init_loss = val_losses(Transformer(args), val_streams, cfg.seq_len, info.eot_id, cfg.eval_windows)["mean"]
    with scratch_dir(ctx, "base") as ckpt:
        result = train_lm(cfg.train, args, data, checkpoint_dir=ckpt, log=ctx.log, on_metrics=ctx.log_metrics)
    val = val_losses(result.model, val_streams, cfg.seq_len, info.eot_id, cfg.eval_windows)
    save_model(result.model, out, extra={"stage": "base_checkpoint", "flavor": flavor, "seq_len": cfg.seq_len,
                                         "mix": weights})
    write_history(out, result.history)
    return {
        "flavor": flavor,
        "size_from": cfg.size_from,
        "seq_len": cfg.seq_len,
        **run_summary(result, cfg.train, cfg.seq_len),
        "init_val_loss": init_loss,
        "val_loss": val,
        "val_perplexity": round(float(np.exp(val["mean"])), 3),
        "mix": weights,
    }
