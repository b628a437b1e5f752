"""Domain experts against the base they branched from (recipe: "Code expert", "Multilingual expert";
docs/architecture.md, "The recipe, stage by stage"): the ``experts`` section of ``eval_report``.

Each expert is compared with ``base_checkpoint`` on its domain's validation stream (perplexity, from
the report's perplexity table: the same windows for every model), on the other streams (what the
specialization costs), and, where the domain has a verifiable task family, on that family's test
prompts by the likelihood of the reference answer (``answer_nll``): a task score for pre-trained
models, which cannot yet be asked to answer. The multilingual expert has no task family yet, so its
row has no task score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from factory.model.chat_format import ChatFormat
from factory.post.encode import sft_example
from factory.post.prompts import TaskPrompt
from factory.train.data import pad_collate
from factory.train.losses import IGNORE, sequence_logprob, shift_labels

# expert asset -> (its domain's validation stream, its domain's task family or None)
EXPERTS: dict[str, tuple[str, str | None]] = {
    "code_expert": ("code", "code"),
    "multilingual_expert": ("multilingual", None),
}
BASE = "base_checkpoint"


@torch.no_grad()
def answer_nll(model: torch.nn.Module, fmt: ChatFormat, prompts: Sequence[TaskPrompt], batch_size: int = 64
               ) -> dict[str, Any]:
    """Mean negative log-likelihood per answer token of each prompt's reference answer (and its
    ``<|eot_id|>``) after the chat-formatted prompt; dialogs longer than the model's context are
    counted as skipped, not truncated (no NLL when none fits)."""
    examples = [e for p in prompts if (e := sft_example(fmt, p.opening(), p.reference, model.args.max_seq_len))]
    skipped = len(prompts) - len(examples)
    if not examples:
        return {"nll_per_token": None, "prompts": 0, "skipped_too_long": skipped}
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(examples), batch_size):
        batch = pad_collate(examples[start : start + batch_size], fmt.pad_id)
        total -= float(sequence_logprob(model, batch["input_ids"], batch["labels"]).sum())
        tokens += int((shift_labels(batch["input_ids"], batch["labels"]) != IGNORE).sum())
    return {"nll_per_token": round(total / tokens, 4), "prompts": len(examples), "skipped_too_long": skipped}


def expert_rows(ppl: dict[str, dict[str, Any]], task_nll: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One row per expert present in ``ppl`` (the report's perplexity section, which holds ``BASE``):
    its domain perplexity against the base's with the relative change, the mean relative change on the
    other streams, and the task score against the base's where ``task_nll`` (model -> answer_nll) has both."""
    base = ppl[BASE]["ppl"]
    rows = {}
    for name, (stream, family) in EXPERTS.items():
        if name not in ppl or stream not in base:
            continue
        mine = ppl[name]["ppl"]
        others = [s for s in base if s != stream and s in mine]
        row: dict[str, Any] = {
            "domain": stream,
            "base_ppl": base[stream],
            "expert_ppl": mine[stream],
            "domain_ppl_rel_change": round(mine[stream] / base[stream] - 1.0, 4),
            "other_streams_ppl_rel_change": round(sum(mine[s] / base[s] - 1.0 for s in others) / len(others), 4)
            if others else None,
            "task_family": family,
        }
        if family and name in task_nll and BASE in task_nll:
            row["base_answer_nll"] = before = task_nll[BASE]["nll_per_token"]
            row["expert_answer_nll"] = after = task_nll[name]["nll_per_token"]
            row["answer_nll_change"] = round(after - before, 4) if None not in (before, after) else None
            row["task_prompts"] = task_nll[name]["prompts"]
        rows[name] = row
    return rows
