"""The pre-training stages as configurations of the one trainer (recipe: "Pre-Training Recipe",
"Annealing Data").

- ``base_checkpoint``: initial pre-training from scratch on the chosen data mix: AdamW, linear
  warmup + cosine decay to a floor, batch-size ramp, packed sequences with document masking, GQA
  and RoPE θ = 500 000; the model size comes from the config or from the scaling-law fit.
- ``long_context_checkpoint``: the context is raised in increments; each increment trains until
  its gates pass (short-context loss recovered to within a tolerance of the base model's, and
  needle-in-a-haystack solved at the new length) or its step budget runs out.
- ``annealed_checkpoint``: the LR falls linearly to 0 on a mix that upsamples high-quality data,
  at the long-context length; optionally the same annealing values a small dataset (30 % new
  data / 70 % default mix against an anneal on the default mix alone).
- ``code_expert`` / ``multilingual_expert``: continued pre-training branched from the base run on a
  mix shifted towards one domain.

Every stage trains through ``factory.train.trainer.train`` with the ``LanguageModeling`` objective
and ``MixedTokens`` batches; checkpoints go to ``ctx.work_dir`` so an interrupted build resumes.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from factory.data.tokens import (
    SPLITS,
    TokenizerInfo,
    load_stream,
    packed_sources,
    read_mix,
    tokenizer_info,
)
from factory.eval.niah import NeedleSource, NiahBuilder, niah_table
from factory.eval.perplexity import stream_losses
from factory.model.checkpoint_io import load_args, load_state, save_model
from factory.model.flavors import model_args
from factory.model.llama import ModelArgs, Transformer
from factory.stage import StageConfig, StageContext
from factory.train.checkpoint import latest_checkpoint, load_checkpoint
from factory.train.data import MixedTokens
from factory.train.losses import LanguageModeling
from factory.train.schedules import samples_before
from factory.train.trainer import TrainConfig, TrainResult, flops_per_token, train

HISTORY_FILE = "train_history.json"


# ---------------------------------------------------------------------------------------------
# Helpers shared by the pre-training stages, the mix experiments and the IsoFLOP grid.


def train_lm(
    cfg: TrainConfig,
    args: ModelArgs,
    data,
    *,
    init_state: Mapping[str, Any] | None = None,
    checkpoint_dir: Path | None = None,
    log: Callable[[str], None] = print,
    on_metrics: Callable[[dict[str, float], int], None] | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """One next-token-prediction run of the one trainer on a ``Transformer`` of shape ``args``."""
    return train(cfg, lambda: Transformer(args), LanguageModeling(), data, init_state=init_state,
                 checkpoint_dir=checkpoint_dir, log=log, on_metrics=on_metrics, stop_after=stop_after)


def map_runs(fn: Callable[..., Any], items: Sequence[Any], **shared: Any) -> list[Any]:
    """``[fn(item, **shared) for item in items]``: as plain Ray tasks when Ray is initialized (each
    run is single-worker; never a Ray Train job per run), else sequentially in this process."""
    try:
        import ray
    except ImportError:  # Ray is a pinned dependency; without it the grid simply runs in-process.
        ray = None
    if ray is not None and ray.is_initialized():
        remote = ray.remote(num_cpus=1)(fn)
        refs = {k: ray.put(v) for k, v in shared.items()}
        return ray.get([remote.remote(item, **refs) for item in items])
    return [fn(item, **shared) for item in items]


@contextlib.contextmanager
def scratch_dir(ctx: StageContext, name: str) -> Iterator[Path]:
    """A resumable scratch folder under ``ctx.work_dir``, or a temporary one in ad-hoc calls."""
    if ctx.work_dir is not None:
        path = Path(ctx.work_dir) / name
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix=f"factory-{name}-") as tmp:
            yield Path(tmp)


def load_streams(mix_dir: Path, names: Sequence[str], split: str) -> dict[str, np.ndarray]:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}")
    return {n: load_stream(mix_dir, n, split) for n in names}


def mix_data(train_streams: Mapping[str, np.ndarray], weights: Mapping[str, float], seq_len: int, eot_id: int,
             seed: int, extra_sources: Mapping[str, Any] | None = None) -> MixedTokens:
    """``MixedTokens`` over the streams (and extra window sources such as NIAH examples)."""
    sources: dict[str, Any] = dict(packed_sources(train_streams, seq_len, eot_id, seed))
    sources.update(extra_sources or {})
    missing = [n for n, w in weights.items() if w > 0 and n not in sources]
    if missing:
        raise ValueError(f"mix names streams {missing} that have no training window of {seq_len} tokens")
    return MixedTokens(sources, weights, seed=seed)


def normalize(weights: Mapping[str, float]) -> dict[str, float]:
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        raise ValueError(f"mix weights {dict(weights)} have no positive entry")
    return {k: w / total for k, w in weights.items() if w > 0}


def shifted_mix(base: Mapping[str, float], domain: str, share: float) -> dict[str, float]:
    """``domain`` gets ``share`` of the mix; the other domains split the rest in their base ratio."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"domain share must be in (0, 1], got {share}")
    rest = {k: w for k, w in base.items() if k != domain and w > 0}
    out = {k: (1.0 - share) * w / sum(rest.values()) for k, w in rest.items()} if rest else {}
    out[domain] = share
    return normalize(out)


def val_losses(model, val_streams: Mapping[str, np.ndarray], seq_len: int, eot_id: int,
               max_windows: int) -> dict[str, float]:
    """Per-stream validation NLL plus their ``mean`` (the mix experiments' and gates' score)."""
    losses = stream_losses(model, val_streams, seq_len, eot_id=eot_id, max_windows=max_windows)
    if not losses:
        raise ValueError(f"no validation stream holds a window of {seq_len} tokens")
    return {**{k: round(v, 5) for k, v in losses.items()}, "mean": round(float(np.mean(list(losses.values()))), 5)}


def run_summary(result: TrainResult, cfg: TrainConfig, seq_len: int) -> dict[str, Any]:
    """Params, FLOPs per token and tokens of a whole run (resumed or not) for stage metadata."""
    model = result.model
    tokens = samples_before(cfg.steps, cfg.batch_size, cfg.batch_ramp) * seq_len
    fpt = flops_per_token(model, seq_len)
    return {
        "params": model.num_params(),
        "non_embedding_params": model.num_params(exclude_embeddings=True),
        "flops_per_token": fpt,
        "train_flops": fpt * tokens,
        "tokens": tokens,
        "steps": cfg.steps,
        "resumed_from_step": result.resumed_from,
        "wall_s": round(result.wall_s, 2),
        "final_train_loss": round(result.final.get("loss", float("nan")), 5),
        "tokens_per_s": round(result.final.get("tokens_per_s", 0.0), 1),
    }


def _write_history(out: Path, history: list[dict[str, float]], name: str = HISTORY_FILE) -> None:
    (out / name).write_text(json.dumps(history, indent=1))


def _stage_inputs(inputs: dict[str, Path]) -> tuple[TokenizerInfo, dict[str, Any]]:
    return tokenizer_info(inputs["tokenizer"]), read_mix(inputs["data_mix"])


# ---------------------------------------------------------------------------------------------
# base_checkpoint


class PretrainConfig(StageConfig):
    """Initial pre-training of the base model on the chosen data mix."""

    flavor: str = Field(description="Model flavor (factory.model.flavors) used when size_from is 'config'.")
    size_from: Literal["config", "scaling_law_fit"] = Field(
        "config", description="Take the flavor from this config or from scaling_law_fit's recommendation.")
    rope_theta: float = Field(500_000.0, description="RoPE base frequency (Llama 3: 500 000).")
    seq_len: int = Field(description="Training sequence length (packed windows, document-masked).")
    train: TrainConfig = Field(description="Optimizer, cosine schedule, batch ramp and run control.")
    eval_windows: int = Field(description="Validation windows per domain for the final losses.")


def _recommended_flavor(fit_dir: Path) -> str:
    from factory.scaling.isoflop import FIT_FILE

    return json.loads((fit_dir / FIT_FILE).read_text())["recommendation"]["flavor"]


def run_base_checkpoint(cfg: PretrainConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = _stage_inputs(inputs)
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
    _write_history(out, result.history)
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


# ---------------------------------------------------------------------------------------------
# long_context_checkpoint


class LongContextConfig(StageConfig):
    """Context raised in increments, each gated by short-context recovery and needle-in-a-haystack."""

    lengths: list[int] = Field(description="Context lengths of the increments, ascending, above the base length.")
    train: TrainConfig = Field(description="Run settings of each increment; steps is its step budget.")
    check_every: int = Field(description="Steps between gate evaluations inside an increment.")
    recovery_tolerance: float = Field(
        description="Gate 1: mean val NLL at the base length may exceed the base model's by at most this (nats).")
    niah_threshold: float = Field(description="Gate 2: NIAH retrieval accuracy required at the new length.")
    niah_depths: list[float] = Field(description="Needle depths (0 = start of the haystack, 1 = end).")
    niah_trials: int = Field(description="Needle examples per depth x length cell.")
    niah_distractors: int = Field(description="Random keys the true key is ranked against.")
    niah_rate: float = Field(description="Share of training windows that are synthetic needle examples.")
    key_digits: int = Field(4, description="Digits of a pass key.")
    filler_stream: str = Field("general", description="Token stream the haystack filler comes from.")
    eval_windows: int = Field(description="Validation windows per domain for the recovery gate.")

    @model_validator(mode="after")
    def _check(self) -> "LongContextConfig":
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
    info, mix = _stage_inputs(inputs)
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

    tcfg = cfg.train.model_copy(update={"checkpoint_every": cfg.check_every})
    mixed = {k: w * (1.0 - cfg.niah_rate) for k, w in weights.items()}
    increments, args, model = [], base_args, base_model
    with scratch_dir(ctx, "long_context") as scratch:
        for length in cfg.lengths:
            args = replace(base_args, max_seq_len=length)
            ckdir = scratch / f"len-{length:06d}"
            done_file = ckdir / INCREMENT_FILE
            if done_file.exists():  # finished before an interruption: reload, don't retrain
                record = json.loads(done_file.read_text())
                model = Transformer(args)
                model.load_state_dict(load_checkpoint(latest_checkpoint(ckdir))["model"])
                state = model.state_dict()
                increments.append(record)
                continue
            needles = length in needle_lengths and cfg.niah_rate > 0
            data = mix_data(train_streams, {**mixed, "niah": cfg.niah_rate} if needles else weights, length,
                            info.eot_id, tcfg.seed,
                            extra_sources={"niah": NeedleSource(train_builder, length, seed=tcfg.seed)} if needles else None)
            checks: list[dict[str, Any]] = []
            latest = latest_checkpoint(ckdir)
            step = int(latest.name.split("-")[-1]) if latest is not None else 0
            while True:
                stop = min(step + cfg.check_every, tcfg.steps)
                result = train_lm(tcfg, args, data, init_state=state, checkpoint_dir=ckdir, log=ctx.log,
                                  on_metrics=ctx.log_metrics, stop_after=stop)
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


# ---------------------------------------------------------------------------------------------
# annealed_checkpoint


class AnnealConfig(StageConfig):
    """LR annealed linearly to 0 on a mix that upsamples high-quality data."""

    train: TrainConfig = Field(description="Run settings; schedule must be linear_to_zero.")
    seq_len: int = Field(0, description="Training length; 0 keeps the long-context model's length.")
    upsample: dict[str, float] = Field(
        default_factory=dict, description="Multipliers on the chosen mix's domain weights (e.g. math: 2).")
    high_quality_weight: float = Field(
        description="Share of the anneal mix drawn from the high-quality stream (top quality scores).")
    eval_windows: int = Field(description="Validation windows per domain.")
    value_dataset: str = Field(
        "", description="Stream to value by annealing (empty: skip): new_weight of it vs the default mix alone.")
    value_weight: float = Field(0.3, description="Share of the valued dataset in its anneal (recipe: 30%).")
    value_steps: int = Field(0, description="Steps of each valuation anneal; 0 means train.steps.")

    @model_validator(mode="after")
    def _check(self) -> "AnnealConfig":
        if self.train.schedule != "linear_to_zero":
            raise ValueError(f"annealing needs schedule linear_to_zero, got {self.train.schedule}")
        if not 0.0 <= self.high_quality_weight < 1.0:
            raise ValueError("high_quality_weight must be in [0, 1)")
        return self


HIGH_QUALITY = "high_quality"


def anneal_mix(base: Mapping[str, float], upsample: Mapping[str, float], high_quality_weight: float) -> dict[str, float]:
    """The chosen mix with domain multipliers applied (domains absent from it are skipped: a small
    corpus may lack one), plus a high-quality share."""
    mix = normalize({k: w * upsample.get(k, 1.0) for k, w in base.items()})
    mix = {k: w * (1.0 - high_quality_weight) for k, w in mix.items()}
    if high_quality_weight > 0:
        mix[HIGH_QUALITY] = high_quality_weight
    return mix


def _branch_from(src: Path, seq_len: int) -> tuple[Any, dict]:
    """Model args and weights of the checkpoint a stage continues from, at ``seq_len`` (0 keeps its own)."""
    args = load_args(src)
    return replace(args, max_seq_len=seq_len or args.max_seq_len), load_state(src)


def run_annealed_checkpoint(cfg: AnnealConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = _stage_inputs(inputs)
    args, state = _branch_from(inputs["long_context_checkpoint"], cfg.seq_len)
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
    _write_history(out, result.history)
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
    vcfg = cfg.train.model_copy(update={"steps": cfg.value_steps or cfg.train.steps, "checkpoint_every": 0})
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


# ---------------------------------------------------------------------------------------------
# code_expert / multilingual_expert


class ExpertConfig(StageConfig):
    """Continued pre-training of a domain expert branched from the base checkpoint."""

    domain: str = Field(description="Domain stream the expert specializes in (code, multilingual, ...).")
    domain_weight: float = Field(description="Share of that domain in the expert's mix (e.g. 0.85 code).")
    train: TrainConfig = Field(description="Run settings of the continued pre-training.")
    seq_len: int = Field(0, description="Training length; 0 keeps the base model's length.")
    eval_windows: int = Field(description="Validation windows per domain.")


def run_expert_checkpoint(cfg: ExpertConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    info, mix = _stage_inputs(inputs)
    args, state = _branch_from(inputs["base_checkpoint"], cfg.seq_len)
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
    _write_history(out, result.history)
    return {
        "domain": cfg.domain,
        "mix": weights,
        "seq_len": seq_len,
        **run_summary(result, cfg.train, seq_len),
        "val_loss_before": before,
        "val_loss": after,
        "domain_val_loss_delta": round(after.get(cfg.domain, float("nan")) - before.get(cfg.domain, float("nan")), 5),
    }
