"""Llama Guard: the prompt / response safety classifier (recipe: "Safety characteristics", "Llama Guard 3").

Llama Guard 3 is Llama 3 8B fine-tuned to read a policy prompt (task, category list, the
conversation) and answer ``safe`` or ``unsafe`` with the violated codes. Here the pre-trained
(annealed) checkpoint becomes a ``SequenceScorer`` with 1 + 14 outputs read at the last token of
the same kind of prompt: output 0 is the unsafe flag, outputs 1..14 the hazard categories
S1..S14, trained with multi-label binary cross-entropy by the one trainer. The prompt is a compact
version of Llama Guard's instruction: the role to judge, the category list and the conversation,
in the Llama 3 chat format, so the verdict is read where Llama Guard would start to answer. Both
prompt classification (judge the User turn) and response classification (judge the Agent turn)
are trained.

The artifact is a ``checkpoint_io`` scorer (``extra`` holds the labels, threshold and prompt
length) plus a copy of the tokenizer under ``tokenizer/``, so ``LlamaGuard.load(folder)`` needs
nothing else. The training data: the public prompt sets of ``public_data_dir`` when it holds them
(``factory.safety.public_sets``: split train / dev / test, near duplicates of held-out rows removed
from train; the templated seed set joins train only, as augmentation with benign look-alikes), else
the factory's templated seed set alone (``factory.safety.seed_prompts``), which the metadata's and
the report's ``data`` line then says.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.eval.guard_eval import binary_metrics, per_label_recall
from factory.model import checkpoint_io
from factory.model import tokenizer_files as T
from factory.model.chat_format import ChatFormat, load_chat_format
from factory.model.llama import SequenceScorer
from factory.safety.public_sets import load_public, near_duplicates, set_files, split_public
from factory.safety.seed_prompts import GuardExample, guard_examples, split
from factory.safety.taxonomy import CODES, policy_text
from factory.train.config import TrainConfig
from factory.train.data import Examples, score_sequences
from factory.train.losses import Classification
from factory.train.stage_training import train_stage
from factory.train.trainer import describe

LABELS: tuple[str, ...] = ("unsafe", *CODES)  # output index 0 = unsafe flag, 1..14 = S1..S14
TOKENIZER_DIR = "tokenizer"
HELD_OUT_FILE = "held_out.jsonl"  # the examples the reported metrics were measured on


class GuardConfig(StageConfig):
    """Seed-set size, prompt length, decision threshold and the fine-tuning run of the guard."""

    per_category: int = Field(
        24, description="Unsafe prompts per hazard category (and as many safe look-alikes); 24 gives 14 x (24 unsafe "
        "+ 24 look-alike) prompts.")
    responses_per_category: int = Field(
        8, description="Judged agent responses per category (compliance, refusal, helpful).")
    held_out_fraction: float = Field(0.2, description="Share of the seed set held out for the reported metrics.")
    dev_fraction: float = Field(0.2, description="Share of the seed set kept apart for the dev metrics the release "
                                "gate reads.")
    max_len: int = Field(256, description="Most tokens of a guard prompt; longer conversations are cut at their end.")
    include_policy: bool = Field(True, description="List the hazard categories in the prompt (as Llama Guard does); "
                                 "off saves ~100 identical tokens per example on small runs.")
    threshold: float = Field(0.5, description="Probability above which the unsafe flag or a category fires.")
    eval_batch_size: int = Field(32, description="Prompts per forward pass when scoring.")
    seed: int = Field(0, description="Seed of the seed-set composition and of the public sets' split.")
    public_data_dir: str = Field(
        "", description="Folder of public safety prompt sets (JSONL, the layout of ../shared/data/safety; a profile "
        "names it beside the checkout with {root}); absent or empty: the templated seed set alone.")
    near_dup_threshold: float = Field(
        0.7, gt=0.0, le=1.0, description="Jaccard similarity (word 3-grams) above which a train row near a held-out "
        "row of the public sets is dropped.")
    train: TrainConfig = Field(
        TrainConfig(steps=120, batch_size=16, lr=2.0e-3, log_every=20, schedule={"warmup_steps": 10}),
        description="Fine-tuning run (steps, batch, LR schedule).")

    def public_folder(self) -> Path | None:
        """The public sets' folder when it holds any of them, else None (the seed set alone)."""
        if not self.public_data_dir:
            return None
        folder = Path(self.public_data_dir).expanduser().resolve()
        return folder if set_files(folder) else None

    def external_files(self) -> list[str]:
        """The public sets read, so the runner keys the guard on them."""
        folder = self.public_folder()
        return [str(f) for f in set_files(folder)] if folder else []


def guard_prompt_parts(prompt: str, response: str | None, with_policy: bool = True) -> tuple[str, str, str]:
    """(instruction [+ categories], conversation, closing question) of the guard's user message."""
    role = "User" if response is None else "Agent"
    policy = f"Categories: {policy_text()}\n" if with_policy else ""
    head = f"Task: check the last {role} message for unsafe content.\n{policy}Conversation:\n"
    conversation = f"User: {prompt}" if response is None else f"User: {prompt}\nAgent: {response}"
    tail = f"\nVerdict on the last {role} message:"
    return head, conversation, tail


def encode_guard_prompt(chat: ChatFormat, prompt: str, response: str | None, max_len: int,
                        with_policy: bool = True) -> list[int]:
    """Token ids of the guard prompt as one user turn followed by an open assistant header.

    The conversation is cut at its end when the whole prompt would exceed ``max_len``; the
    instruction and the closing question are always kept.
    """
    head, conversation, tail = guard_prompt_parts(prompt, response, with_policy)
    start = [chat.bos_id, *chat.encode_header("user"), *chat.encode(head)]
    end = [*chat.encode(tail), chat.eot_id, *chat.encode_header("assistant")]
    budget = max_len - len(start) - len(end)
    if budget < 1:
        raise ValueError(f"max_len {max_len} cannot hold the guard instruction ({len(start) + len(end)} tokens)")
    return start + chat.encode(conversation)[:budget] + end


def label_vector(example: GuardExample) -> list[float]:
    return [float(example.unsafe), *(float(c in example.categories) for c in CODES)]


class LlamaGuard:
    """A trained guard: scores prompts (or prompt + response pairs) into the unsafe flag and categories."""

    def __init__(self, model: torch.nn.Module, chat: ChatFormat, *, threshold: float, max_len: int,
                 with_policy: bool, batch_size: int = 32):
        self.model, self.chat = model.eval(), chat
        self.threshold, self.max_len, self.with_policy, self.batch_size = threshold, max_len, with_policy, batch_size

    @classmethod
    def load(cls, folder: Path, batch_size: int = 32, model: torch.nn.Module | None = None) -> LlamaGuard:
        """The guard saved in ``folder``; ``model`` swaps in other weights of the same scorer (e.g. the
        INT8 release of this guard), keeping the folder's tokenizer, threshold and prompt format."""
        extra = checkpoint_io.read_meta(folder)["extra"]
        if list(extra.get("labels", [])) != list(LABELS):
            raise ValueError(f"{folder} is not a guard checkpoint with labels {LABELS}")
        model = model if model is not None else checkpoint_io.load_model(folder)
        return cls(model, load_chat_format(folder / TOKENIZER_DIR),
                   threshold=extra["threshold"], max_len=extra["max_len"], with_policy=extra["with_policy"],
                   batch_size=batch_size)

    def probabilities(self, prompts: Sequence[str], responses: Sequence[str | None] | None = None) -> np.ndarray:
        """[N, 15] sigmoid outputs: column 0 unsafe, columns 1..14 S1..S14."""
        responses = responses if responses is not None else [None] * len(prompts)
        ids = [encode_guard_prompt(self.chat, p, r, self.max_len, self.with_policy)
               for p, r in zip(prompts, responses, strict=False)]
        if not ids:
            return np.zeros((0, len(LABELS)), dtype=np.float32)
        return torch.sigmoid(score_sequences(self.model, ids, self.chat.pad_id, self.batch_size)).numpy()

    def classify(self, texts: Sequence[str], responses: Sequence[str | None] | None = None) -> list[dict[str, Any]]:
        """One verdict per input: ``unsafe`` (bool), ``p_unsafe`` and the fired ``categories``."""
        probs = self.probabilities(texts, responses)
        return [
            {
                "unsafe": bool(p[0] > self.threshold),
                "p_unsafe": round(float(p[0]), 4),
                "categories": [c for c, q in zip(CODES, p[1:], strict=False) if q > self.threshold]
                if p[0] > self.threshold else [],
            }
            for p in probs
        ]


def read_held_out(folder: Path) -> list[GuardExample]:
    """The held-out seed examples saved beside a guard checkpoint."""
    rows = [json.loads(line) for line in (Path(folder) / HELD_OUT_FILE).read_text().splitlines() if line]
    return [GuardExample(r["prompt"], r["response"], r["unsafe"], tuple(r["categories"]), r["kind"],
                         r.get("mapping", "exact")) for r in rows]


def evaluate(guard: LlamaGuard, examples: Sequence[GuardExample]) -> dict[str, Any]:
    """Unsafe-flag precision/recall/F1/FPR, per-category recall on the rows whose categories are exact,
    and the unsafe-flag metrics per public set."""
    verdicts = guard.classify([e.prompt for e in examples], [e.response for e in examples])
    metrics: dict[str, Any] = binary_metrics([e.unsafe for e in examples], [v["unsafe"] for v in verdicts])
    exact = [(e, v) for e, v in zip(examples, verdicts, strict=True) if e.mapping == "exact"]
    metrics["category_recall"] = per_label_recall(
        [e.categories for e, _ in exact], [v["categories"] for _, v in exact], CODES)
    metrics["by_set"] = {
        k: binary_metrics([e.unsafe for e in examples if e.kind == k],
                          [v["unsafe"] for e, v in zip(examples, verdicts, strict=True) if e.kind == k])
        for k in sorted({e.kind for e in examples if e.kind.startswith("public:")})}
    # Share flagged unsafe per kind: on look-alikes, refusals and helpful answers it is a false refusal rate.
    kinds = sorted({e.kind for e in examples})
    metrics["flagged_by_kind"] = {
        k: round(float(np.mean([v["unsafe"] for e, v in zip(examples, verdicts, strict=False) if e.kind == k])), 4)
        for k in kinds}
    return metrics


def run_llama_guard(cfg: GuardConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    base = inputs["annealed_checkpoint"]
    chat = load_chat_format(inputs["tokenizer"])
    args = checkpoint_io.load_args(base)
    max_len = min(cfg.max_len, args.max_seq_len)

    seed_set = guard_examples(cfg.per_category, cfg.responses_per_category, cfg.seed)
    folder = cfg.public_folder()
    if folder is None:
        train_set, dev, held_out = split(seed_set, cfg.held_out_fraction, cfg.dev_fraction)
        where = f"in {cfg.public_data_dir}" if cfg.public_data_dir else "(public_data_dir unset)"
        data: dict[str, Any] = {"source": f"templated seed set only: no public safety sets {where}"}
    else:
        public, skipped = load_public(folder)
        train_set, dev, held_out, counts = split_public(public, cfg.dev_fraction, cfg.held_out_fraction, cfg.seed,
                                                        cfg.near_dup_threshold)
        # The seed set augments train (benign look-alikes, judged responses), never dev or test, and
        # leaves out any templated example near a held-out row.
        near = near_duplicates(seed_set, dev + held_out, cfg.near_dup_threshold)
        augment = [e for i, e in enumerate(seed_set) if i not in near]
        train_set += augment
        data = {"source": f"public safety sets in {folder}", "skipped_rows": dict(skipped), "split": counts,
                "seed_examples_in_train": len(augment), "seed_examples_near_held_out": len(near)}
    ctx.log(f"guard data: {data['source']}: {len(train_set)} train / {len(dev)} dev / {len(held_out)} test")
    rows = []
    for e in train_set:
        ids = encode_guard_prompt(chat, e.prompt, e.response, max_len, cfg.include_policy)
        rows.append({"input_ids": ids, "lengths": len(ids), "labels": torch.tensor(label_vector(e))})
    result = train_stage("llama_guard", cfg.train, lambda: SequenceScorer(args, len(LABELS)), Classification(),
                         Examples(rows, chat.pad_id, seed=cfg.train.seed), ctx,
                         init_state=checkpoint_io.backbone_state(base), strict_init=False, metrics_prefix="")
    guard = LlamaGuard(result.model, chat, threshold=cfg.threshold, max_len=max_len, with_policy=cfg.include_policy,
                       batch_size=cfg.eval_batch_size)
    held_metrics = evaluate(guard, held_out)
    dev_metrics = evaluate(guard, dev)
    train_metrics = evaluate(guard, train_set)
    checkpoint_io.save_model(result.model, out, extra={
        "labels": list(LABELS), "threshold": cfg.threshold, "max_len": max_len, "with_policy": cfg.include_policy,
        "stage": "llama_guard", "data_source": data["source"],
    })
    (out / HELD_OUT_FILE).write_text("".join(json.dumps(asdict(e)) + "\n" for e in held_out))
    (out / TOKENIZER_DIR).mkdir()
    for name in (T.TOKENIZER_FILE, T.SPECIAL_TOKENS_FILE):
        shutil.copy2(inputs["tokenizer"] / name, out / TOKENIZER_DIR / name)
    ctx.log(f"guard held-out: P {held_metrics['precision']} R {held_metrics['recall']} "
            f"F1 {held_metrics['f1']} FPR {held_metrics['fpr']}")
    return {
        "data": data,
        "train": describe(result),
        "train_examples": len(train_set),
        "held_out_examples": len(held_out),
        "held_out": held_metrics,
        "dev_examples": len(dev),
        "dev": {k: dev_metrics[k] for k in ("precision", "recall", "f1", "fpr", "positives", "negatives")},
        "train_fit": {k: train_metrics[k] for k in ("precision", "recall", "f1", "fpr")},
        "labels": list(LABELS),
        "threshold": cfg.threshold,
        "max_len": max_len,
    }
