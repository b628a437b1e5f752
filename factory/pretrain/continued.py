"""What the pre-training stages share (recipe: "Pre-Training Recipe"; docs/architecture.md, "The
recipe, stage by stage"): reading the stage inputs, a pre-training run through the one stage
training call, a run on a mix evaluated before and after and saved (base, annealing, experts), and
continued pre-training branched from an upstream checkpoint (annealing, domain experts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from factory.core.stage import StageContext
from factory.eval.perplexity import val_losses
from factory.model.checkpoint_io import load_args, load_state, save_model
from factory.model.llama import ModelArgs, Transformer
from factory.model.tokenizer_files import TokenizerInfo, tokenizer_info
from factory.train.config import TrainConfig
from factory.train.lm_runs import load_streams, mix_data, run_summary
from factory.train.losses import LanguageModeling
from factory.train.stage_training import train_stage
from factory.train.token_shards import read_mix
from factory.train.trainer import TrainResult

HISTORY_FILE = "train_history.json"


class RunSettings(Protocol):
    """The part of a pre-training stage's config a run on a mix reads."""

    train: TrainConfig
    eval_windows: int


def write_history(out: Path, history: list[dict[str, float]], name: str = HISTORY_FILE) -> None:
    (out / name).write_text(json.dumps(history, indent=1))


def stage_inputs(inputs: dict[str, Path]) -> tuple[TokenizerInfo, dict[str, Any]]:
    return tokenizer_info(inputs["tokenizer"]), read_mix(inputs["data_mix"])


def branch_from(src: Path, seq_len: int) -> tuple[ModelArgs, dict]:
    """Model args and weights of the checkpoint a stage continues from, at ``seq_len`` (0 keeps its own)."""
    args = load_args(src)
    return replace(args, max_seq_len=seq_len or args.max_seq_len), load_state(src)


def pretrain_run(name: str, cfg: TrainConfig, args: ModelArgs, data, ctx: StageContext, *,
                 init_state: Mapping[str, torch.Tensor] | None = None, stop_after: int | None = None,
                 metrics_prefix: str = "") -> TrainResult:
    """The pre-training run ``name`` of a stage: next-token prediction on a ``Transformer`` of shape
    ``args`` through ``train_stage`` (checkpoints in ``ctx.checkpoint_dir(name)``); its curves are
    the stage's own and keep their plain names (``loss``, ``lr``, ...), unless the stage trains
    several runs and names each one's curves (``metrics_prefix``)."""
    return train_stage(name, cfg, lambda: Transformer(args), LanguageModeling(), data, ctx, init_state=init_state,
                       stop_after=stop_after, metrics_prefix=metrics_prefix)


@dataclass
class Streams:
    """The token streams of a stage, by name: training and validation splits."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]

    @classmethod
    def load(cls, mix_dir: Path, train: Sequence[str], val: Sequence[str]) -> Streams:
        """The named streams of the data mix, in the order given (the validation losses list them in
        it); validation streams without tokens are left out."""
        val_streams = load_streams(mix_dir, val, "validation")
        return cls(load_streams(mix_dir, train, "train"), {k: v for k, v in val_streams.items() if len(v)})


@dataclass
class MixRun:
    """A pre-training run on a mix: the trained model, its summary and the validation losses."""

    result: TrainResult
    seq_len: int
    summary: dict[str, Any]  # ``run_summary``: params, FLOPs, tokens, steps, resumption, final loss
    val_loss_before: dict[str, float]  # of the starting weights (a fresh run: its seeded initialization)
    val_loss: dict[str, float]  # after training

    @property
    def val_perplexity(self) -> float:
        return round(float(np.exp(self.val_loss["mean"])), 3)


def train_on_mix(name: str, cfg: RunSettings, args: ModelArgs, init_state: Mapping[str, torch.Tensor] | None,
                 weights: Mapping[str, float], streams: Streams, eot_id: int, out: Path, ctx: StageContext, *,
                 model_extra: Mapping[str, Any]) -> MixRun:
    """Evaluate the starting model, train it on the mix ``weights`` as the stage's run ``name``,
    evaluate it again, and save it under ``out`` (``model_extra`` plus its length and mix in its
    ``model.json``) with its training history (``HISTORY_FILE``)."""
    seq_len = args.max_seq_len
    data = mix_data(streams.train, weights, seq_len, eot_id, cfg.train.seed)  # fails fast on a stream too short
    if init_state is None:
        torch.manual_seed(cfg.train.seed)  # the trainer seeds the same way: this is the run's initial model
    start = Transformer(args)
    if init_state is not None:
        start.load_state_dict(init_state)
    before = val_losses(start, streams.val, seq_len, eot_id, cfg.eval_windows)
    result = pretrain_run(name, cfg.train, args, data, ctx, init_state=init_state)
    after = val_losses(result.model, streams.val, seq_len, eot_id, cfg.eval_windows)
    save_model(result.model, out, extra={**model_extra, "seq_len": seq_len, "mix": dict(weights)})
    write_history(out, result.history)
    return MixRun(result, seq_len, run_summary(result, cfg.train, seq_len), before, after)


@dataclass
class Continued(MixRun):
    """A continued pre-training run, with what it branched from (a stage may train more from it)."""

    args: ModelArgs
    init_state: dict[str, torch.Tensor]
    streams: Streams
    eot_id: int


def continue_pretraining(name: str, cfg: RunSettings, seq_len: int, inputs: dict[str, Path], out: Path,
                         ctx: StageContext, *, upstream: str, weights: Mapping[str, float],
                         train_streams: Sequence[str], val_streams: Sequence[str],
                         model_extra: Mapping[str, Any]) -> Continued:
    """The skeleton of continued pre-training (annealing, domain experts): branch from the
    ``upstream`` checkpoint at ``seq_len`` (0 keeps its length), load the named token streams, then
    ``train_on_mix``: evaluate, train on ``weights``, evaluate, save model and history."""
    info = tokenizer_info(inputs["tokenizer"])
    args, state = branch_from(inputs[upstream], seq_len)
    streams = Streams.load(inputs["data_mix"], train_streams, val_streams)
    ctx.log(f"{name}: continued pre-training from {upstream} at length {args.max_seq_len} on {dict(weights)}")
    run = train_on_mix(name, cfg, args, state, weights, streams, info.eot_id, out, ctx, model_extra=model_extra)
    return Continued(**vars(run), args=args, init_state=state, streams=streams, eot_id=info.eot_id)
