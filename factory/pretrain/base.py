"""``base_checkpoint`` (recipe: "Initial Pre-Training"; docs/architecture.md, "The recipe, stage by
stage"): pre-training from scratch on the chosen data mix: AdamW, linear warmup + cosine decay to a
floor, batch-size ramp, packed sequences with document masking, GQA and RoPE θ = 500 000; the model
size comes from the config or from the scaling-law fit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.flavors import model_args
from factory.pretrain.continued import Streams, stage_inputs, train_on_mix
from factory.train.config import TrainConfig


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
    streams = Streams.load(inputs["data_mix"], list(weights), list(weights))
    ctx.log(f"base pre-training: flavor {flavor} ({cfg.size_from}), mix {weights}, {cfg.train.steps} steps")
    run = train_on_mix("base", cfg, args, None, weights, streams, info.eot_id, out, ctx,
                       model_extra={"stage": "base_checkpoint", "flavor": flavor})
    return {
        "flavor": flavor,
        "size_from": cfg.size_from,
        "seq_len": cfg.seq_len,
        **run.summary,
        "init_val_loss": run.val_loss_before["mean"],
        "val_loss": run.val_loss,
        "val_perplexity": run.val_perplexity,
        "mix": weights,
    }
