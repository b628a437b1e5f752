"""Saving and loading model weights as artifacts: ``model.safetensors`` + ``model.json``.

Every checkpoint-producing stage (pre-training, experts, RM, SFT, DPO, guard, chat model) writes
this layout, so any later stage can load any earlier model. ``model.json`` holds the
``ModelArgs``, the model kind (``lm`` or ``scorer`` with its number of outputs) and free-form
extras (labels of a classifier, the stage that produced it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from factory.model.llama import ModelArgs, SequenceScorer, Transformer

WEIGHTS = "model.safetensors"
META = "model.json"


def build_model(args: ModelArgs, kind: str = "lm", n_outputs: int = 1) -> nn.Module:
    if kind == "lm":
        return Transformer(args)
    if kind == "scorer":
        return SequenceScorer(args, n_outputs)
    raise ValueError(f"unknown model kind {kind!r}; expected 'lm' or 'scorer'")


def save_model(model: nn.Module, folder: Path, extra: dict[str, Any] | None = None) -> None:
    """Write weights (contiguous fp32 copies, shared tensors untied) and metadata into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(model, SequenceScorer):
        args, kind, n_outputs = model.backbone.args, "scorer", model.score.out_features
    elif isinstance(model, Transformer):
        args, kind, n_outputs = model.args, "lm", 0
    else:
        raise TypeError(f"cannot save a {type(model).__name__}")
    state = {k: v.detach().to(torch.float32).contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    meta = {"args": args.to_dict(), "kind": kind, "n_outputs": n_outputs, "extra": extra or {}}
    (folder / META).write_text(json.dumps(meta, indent=2, sort_keys=True))


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / META).read_text())


def load_args(folder: Path) -> ModelArgs:
    return ModelArgs(**read_meta(folder)["args"])


def load_state(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / WEIGHTS))


def load_model(folder: Path) -> nn.Module:
    """Rebuild the saved model (LM or scorer) with its weights, in eval mode."""
    meta = read_meta(folder)
    model = build_model(ModelArgs(**meta["args"]), meta["kind"], meta["n_outputs"] or 1)
    model.load_state_dict(load_state(folder))
    return model.eval()


def backbone_state(folder: Path) -> dict[str, torch.Tensor]:
    """Weights of a saved LM renamed for a ``SequenceScorer`` backbone (to start an RM or guard from it)."""
    return {f"backbone.{k}": v for k, v in load_state(folder).items()}
