"""``long_context_checkpoint`` (recipe: "Long Context Pre-Training"; docs/architecture.md, "The
recipe, stage by stage"): the context of the base model is raised in increments; each increment is a
training run of its own (checkpoints in ``ctx.checkpoint_dir("long_context/len-NNNNNN")``) that
trains in chunks of ``check_every`` steps until its gates pass (short-context loss recovered to
within a tolerance of the base model's, and needle-in-a-haystack solved at the new length) or its
step budget runs out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from factory.core.stage import StageConfig, StageContext
from factory.eval.niah import NeedleSource, NiahBuilder, niah_table
from factory.eval.perplexity import val_losses
from factory.model.checkpoint_io import load_args, load_state, save_model
from factory.model.llama import Transformer
from factory.pretrain.continued import pretrain_run, stage_inputs
from factory.train.checkpoint import checkpoint_step, latest_checkpoint, load_checkpoint
from factory.train.config import TrainConfig
from factory.train.lm_runs import load_streams, mix_data


class LongContextConfig(StageConfig):
    """Context raised in increments, each gated by short-context recovery and needle-in-a-haystack."""

    lengths: list[int] = Field(
        [256, 512], description="Context lengths of the increments, ascending, above the base length.")
    train: TrainConfig = Field(
        TrainConfig(steps=90, batch_size=4, lr=1.0e-3, log_every=30, schedule={"kind": "constant", "warmup_steps": 5}),
        description="Run settings of each increment; steps is its step budget.")
    check_every: int = Field(30, description="Steps between gate evaluations inside an increment.")
    recovery_tolerance: float = Field(
        0.05, description="Gate 1: mean val NLL at the base length may exceed the base model's by at most this (nats).")
    niah_threshold: float = Field(0.9, description="Gate 2: NIAH retrieval accuracy required at the new length.")
    niah_depths: list[float] = Field(
        [0.0, 0.25, 0.5, 0.75, 1.0], description="Needle depths (0 = start of the haystack, 1 = end).")
    niah_trials: int = Field(4, description="Needle examples per depth x length cell.")
    niah_distractors: int = Field(3, description="Random keys the true key is ranked against.")
    niah_rate: float = Field(0.25, description="Share of training windows that are synthetic needle examples.")
    key_digits: int = Field(4, description="Digits of a pass key.")
    filler_stream: str = Field("general", description="Token stream the haystack filler comes from.")
    eval_windows: int = Field(16, description="Validation windows per domain for the recovery gate.")

    @model_validator(mode="after")
    def _check(self) -> LongContextConfig:
        if not self.lengths or sorted(set(self.lengths)) != list(self.lengths):
            raise ValueError(f"lengths must be a non-empty ascending list, got {self.lengths}")
        if not 0.0 <= self.niah_rate < 1.0:
            raise ValueError(f"niah_rate must be in [0, 1), got {self.niah_rate}")
        if self.check_every < 1:
            raise ValueError("check_every must be >= 1")
        return self


INCREMENT_FILE = "increment.json"


def _gates(model, cfg: LongContextConfig, length: int, short_len: int, base_short: float,
           val_streams: Mapping[str, np.ndarray], builder: NiahBuilder, eot_id: int, seed: int) -> dict[str, Any]:
    short = val_losses(model, val_streams, short_len, eot_id, cfg.eval_windows)["mean"]
    recovered = short <= base_short + cfg.recovery_tolerance
    if length < builder.min_length():  # too short to hold a needle: only the recovery gate applies
        return {"short_val_loss": short, "short_recovered": recovered, "niah_accuracy": None,
                "niah_solved": None, "passed": recovered, "niah": {}}
    niah = niah_table(model, builder, [length], cfg.niah_depths, trials=cfg.niah_trials,
                      n_distractors=cfg.niah_distractors, seed=seed)
    solved = niah["mean"] >= cfg.niah_threshold
    return {"short_val_loss": short, "short_recovered": recovered, "niah_accuracy": niah["mean"],
            "niah_solved": solved, "passed": recovered and solved, "niah": niah["table"]}


def _filler(streams: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name in streams and len(streams[name]):
        return streams[name]
    return max(streams.values(), key=len)


def run_long_context_checkpoint(cfg: LongContextConfig, inputs: dict[str, Path], out: Path,
                                ctx: StageContext) -> dict[str, Any]:
    info, mix = stage_inputs(inputs)
    base_args = load_args(inputs["base_checkpoint"])
    state = load_state(inputs["base_checkpoint"])
    short_len = base_args.max_seq_len
    if cfg.lengths[0] <= short_len:
        raise ValueError(f"first increment {cfg.lengths[0]} must exceed the base length {short_len}")
    weights = mix["weights"]
    train_streams = load_streams(inputs["data_mix"], list(weights), "train")
    val_streams = load_streams(inputs["data_mix"], list(weights), "validation")
    train_builder = NiahBuilder(info.encode, _filler(train_streams, cfg.filler_stream), info.eot_id, cfg.key_digits)
    val_builder = NiahBuilder(info.encode, _filler(val_streams, cfg.filler_stream), info.eot_id, cfg.key_digits)

    needle_lengths = [n for n in cfg.lengths if n >= val_builder.min_length()]
    if len(needle_lengths) < len(cfg.lengths):
        ctx.log(f"increments {sorted(set(cfg.lengths) - set(needle_lengths))} are shorter than a needle example "
                f"({val_builder.min_length()} tokens): only their recovery gate applies")
    base_model = Transformer(base_args)
    base_model.load_state_dict(state)
    base_short = val_losses(base_model, val_streams, short_len, info.eot_id, cfg.eval_windows)["mean"]
    base_niah = niah_table(base_model, val_builder, needle_lengths, cfg.niah_depths, trials=cfg.niah_trials,
                           n_distractors=cfg.niah_distractors, seed=cfg.train.seed)
    ctx.log(f"base model: short-context val loss {base_short:.4f}, NIAH {base_niah['per_length']}")

    tcfg = cfg.train.model_copy(
        update={"checkpoint": cfg.train.checkpoint.model_copy(update={"every": cfg.check_every})})
    mixed = {k: w * (1.0 - cfg.niah_rate) for k, w in weights.items()}
    increments, args, model = [], base_args, base_model
    for length in cfg.lengths:
        args = replace(base_args, max_seq_len=length)
        run = f"long_context/len-{length:06d}"
        ckdir = ctx.checkpoint_dir(run)
        done_file = ckdir / INCREMENT_FILE
        if done_file.exists():  # finished before an interruption: reload, don't retrain
            record = json.loads(done_file.read_text())
            model = Transformer(args)
            model.load_state_dict(load_checkpoint(latest_checkpoint(ckdir))["model"])
            state = model.state_dict()
            increments.append(record)
            continue
        needles = length in needle_lengths and cfg.niah_rate > 0
        needle_source = {"niah": NeedleSource(train_builder, length, seed=tcfg.seed)} if needles else None
        data = mix_data(train_streams, {**mixed, "niah": cfg.niah_rate} if needles else weights, length,
                        info.eot_id, tcfg.seed, extra_sources=needle_source)
        checks: list[dict[str, Any]] = []
        latest = latest_checkpoint(ckdir)
        step = checkpoint_step(latest) if latest is not None else 0  # the manifest's step, not the folder's name
        while True:
            stop = min(step + cfg.check_every, tcfg.steps)
            # Each increment's steps count from 1: its curves go apart, beside its gate curves.
            result = pretrain_run(run, tcfg, args, data, ctx, init_state=state, stop_after=stop,
                                  metrics_prefix=f"len{length}/")
            step, model = stop, result.model
            gate = _gates(model, cfg, length, short_len, base_short, val_streams, val_builder, info.eot_id,
                          seed=cfg.train.seed + step)
            checks.append({"step": step, **gate})
            ctx.log(f"len {length} step {step}: short loss {gate['short_val_loss']:.4f} "
                    f"(base {base_short:.4f}), NIAH {gate['niah_accuracy']} -> "
                    f"{'pass' if gate['passed'] else 'not yet'}")
            curves = {f"len{length}/short_val_loss": gate["short_val_loss"]}
            if gate["niah_accuracy"] is not None:
                curves[f"len{length}/niah_accuracy"] = gate["niah_accuracy"]
            ctx.log_metrics(curves, step)
            if gate["passed"] or step >= tcfg.steps:
                break
        record = {"length": length, "steps": step, "passed": checks[-1]["passed"], "checks": checks}
        done_file.write_text(json.dumps(record))
        increments.append(record)
        state = model.state_dict()

    final_len = cfg.lengths[-1]
    # The base length joins the final table when it can hold a needle at all.
    table_lengths = [n for n in [short_len, *cfg.lengths] if n >= val_builder.min_length()]
    niah_final = niah_table(model, val_builder, table_lengths, cfg.niah_depths, trials=cfg.niah_trials,
                            n_distractors=cfg.niah_distractors, seed=cfg.train.seed + 1)
    save_model(model, out, extra={"stage": "long_context_checkpoint", "seq_len": final_len, "mix": weights})
    (out / "gates.json").write_text(json.dumps(
        {"base_short_val_loss": base_short, "base_niah": base_niah, "increments": increments,
         "final_niah": niah_final}, indent=1))
    return {
        "base_seq_len": short_len,
        "seq_len": final_len,
        "base_short_val_loss": base_short,
        "increments": [{"length": r["length"], "steps": r["steps"], "passed": r["passed"],
                        "short_val_loss": r["checks"][-1]["short_val_loss"],
                        "niah_accuracy": r["checks"][-1]["niah_accuracy"]} for r in increments],
        "all_gates_passed": all(r["passed"] for r in increments),
        "niah_base_per_length": base_niah["per_length"],
        "niah_final_per_length": niah_final["per_length"],
        "niah_chance": niah_final["chance"],
    }
