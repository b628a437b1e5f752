"""``code_expert`` / ``multilingual_expert``: continued pre-training branched from the base run on a
mix shifted towards one domain (recipe: "Code expert", "Multilingual expert").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.eval.perplexity import val_losses
from factory.model.checkpoint_io import save_model
from factory.model.llama import Transformer
from factory.pretrain.continued import branch_from, stage_inputs, write_history
from factory.train.lm_runs import load_streams, mix_data, run_summary, scratch_dir, shifted_mix, train_lm
from factory.train.trainer import TrainConfig


class ExpertConfig(StageConfig):
    """Continued pre-training of a domain expert branched from the base checkpoint."""

    domain: str = Field(description="Domain stream the expert specializes in (code, multilingual, ...).")
    domain_weight: float = Field(description="Share of that domain in the expert's mix (e.g. 0.85 code).")
    train: TrainConfig = Field(
        TrainConfig(steps=60, batch_size=16, lr=1.0e-3, log_every=20, schedule={"warmup_steps": 5, "min_lr": 1.0e-4}),
        description="Run settings of the continued pre-training.")
    seq_len: int = Field(0, description="Training length; 0 keeps the base model's length.")
    eval_windows: int = Field(16, description="Validation windows per domain.")


def run_expert_checkpoint(cfg: ExpertConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = stage_inputs(inputs)
    args, state = branch_from(inputs["base_checkpoint"], cfg.seq_len)
    seq_len = args.max_seq_len
    names = sorted(set(mix["weights"]) | {cfg.domain})
    train_streams = load_streams(inputs["data_mix"], names, "train")
    val_streams = {k: v for k, v in load_streams(inputs["data_mix"], names, "validation").items() if len(v)}
    if len(train_streams[cfg.domain]) <= seq_len:
        raise ValueError(f"expert domain {cfg.domain!r} has no training window of {seq_len} tokens")
    weights = shifted_mix(mix["weights"], cfg.domain, cfg.domain_weight)
    ctx.log(f"{cfg.domain} expert: continued pre-training on {weights}")
    start = Transformer(args)
    start.load_state_dict(state)
    before = val_losses(start, val_streams, seq_len, info.eot_id, cfg.eval_windows)
    data = mix_data(train_streams, weights, seq_len, info.eot_id, cfg.train.seed)
    with scratch_dir(ctx, f"expert-{cfg.domain}") as ckpt:
        result = train_lm(cfg.train, args, data, init_state=state, checkpoint_dir=ckpt, log=ctx.log,
                          on_metrics=ctx.log_metrics)
    after = val_losses(result.model, val_streams, seq_len, info.eot_id, cfg.eval_windows)
    save_model(result.model, out, extra={"stage": f"{cfg.domain}_expert", "seq_len": seq_len, "mix": weights})
    write_history(out, result.history)
    return {
        "domain": cfg.domain,
        "mix": weights,
        "seq_len": seq_len,
        **run_summary(result, cfg.train, seq_len),
        "val_loss_before": before,
        "val_loss": after,
        "domain_val_loss_delta": round(after.get(cfg.domain, float("nan")) - before.get(cfg.domain, float("nan")), 5),
    }
