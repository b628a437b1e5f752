"""``code_expert`` / ``multilingual_expert`` (recipe: "Code expert", "Multilingual expert";
docs/architecture.md, "The recipe, stage by stage"): continued pre-training branched from the base
checkpoint on a mix shifted towards one domain.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.pretrain.continued import continue_pretraining
from factory.train.config import TrainConfig
from factory.train.lm_runs import shifted_mix
from factory.train.token_shards import read_mix


class ExpertConfig(StageConfig):
    """Continued pre-training of a domain expert branched from the base checkpoint."""

    domain: str = Field(description="Domain stream the expert specializes in (code, multilingual, ...).")
    domain_weight: float = Field(gt=0, le=1, description="Share of that domain in the expert's mix (e.g. 0.85 code).")
    train: TrainConfig = Field(
        TrainConfig(steps=60, batch_size=16, lr=1.0e-3, log_every=20, schedule={"warmup_steps": 5, "min_lr": 1.0e-4}),
        description="Run settings of the continued pre-training.")
    seq_len: int = Field(0, description="Training length; 0 keeps the base model's length.")
    eval_windows: int = Field(16, description="Validation windows per domain.")


def run_expert_checkpoint(cfg: ExpertConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    base_mix = read_mix(inputs["data_mix"])["weights"]
    weights = shifted_mix(base_mix, cfg.domain, cfg.domain_weight)
    names = sorted(set(base_mix) | {cfg.domain})
    run = continue_pretraining(f"expert-{cfg.domain}", cfg, cfg.seq_len, inputs, out, ctx, upstream="base_checkpoint",
                               weights=weights, train_streams=names, val_streams=names,
                               model_extra={"stage": f"{cfg.domain}_expert"})
    before, after = run.val_loss_before, run.val_loss
    return {
        "domain": cfg.domain,
        "mix": weights,
        "seq_len": run.seq_len,
        **run.summary,
        "val_loss_before": before,
        "val_loss": after,
        "domain_val_loss_delta": round(after.get(cfg.domain, float("nan")) - before.get(cfg.domain, float("nan")), 5),
    }
