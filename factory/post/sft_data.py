"""The SFT data mix of one round (recipe: "SFT Data": rejection-sampled responses plus synthetic
data targeting specific capabilities).

Records are ``{"opening", "response", "task", "key", "source"}``: the messages the response answers
(``TaskPrompt.opening``: a system prompt where there is one, earlier turns, the user's message), the
response, and its source ``rejection_sampling`` or ``synthetic``. Synthetic records are
the task generators' verified-correct solutions (the recipe's synthetic capability data: arithmetic
as in "Math Reasoning", unit-tested functions as in "Capabilities/Code"); a share of them opens with
the family's system prompt, so the policy learns to follow the steer rejection sampling draws under.
Rejection-sampled records never carry it (the steer is distilled away). Records go through
``factory.post.qc`` before they are encoded.

Pre-training text joins the mix as token windows (``pretraining_examples``: the data mix's train
streams at its chosen weights, loss on every token), so fine-tuning does not forget language
modelling; the eval report's perplexity reads the validation streams, which SFT never sees.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from factory.post.prompts import TaskPrompt
from factory.post.rejection import Candidate
from factory.post.tasks import FAMILIES


def rejection_records(candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """The RM-best response of each prompt; its checker score travels beside it (the checker annotates,
    the RM picks: recipe, "use our reward model to select the best candidate"). A family of reasoning
    traces (``TaskFamily.verified_traces``) keeps its pick only when the final answer verifies."""
    return [
        {"opening": c.prompt.opening(), "response": c.response, "task": c.prompt.task, "key": c.prompt.key,
         "source": "rejection_sampling", "reward": c.rewards[c.best], "task_score": c.task_scores[c.best]}
        for c in candidates
        if not (FAMILIES[c.prompt.task].verified_traces and c.task_scores[c.best] < 1.0)
    ]


def synthetic_records(prompts: Sequence[TaskPrompt], system_share: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """The references as SFT records; about ``system_share`` of them open with their family's system
    prompt (``steered``: True)."""
    rng = random.Random(seed)
    out = []
    for p in prompts:
        steered = rng.random() < system_share
        out.append({"opening": p.opening(FAMILIES[p.task].system_prompt if steered else None),
                    "response": p.reference, "task": p.task, "key": p.key, "source": "synthetic",
                    "steered": steered})
    return out


SOURCES = ("rejection_sampling", "synthetic")  # where an SFT dialog comes from


def source_counts(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Dialogs by source and the share sampled by the policy, overall and per task family."""

    def shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
        counts = {s: sum(r["source"] == s for r in rows) for s in SOURCES}
        return {**counts, "sampled_share": round(counts["rejection_sampling"] / max(1, len(rows)), 4)}

    tasks = sorted({r["task"] for r in records})
    return {**shares(list(records)), "per_family": {t: shares([r for r in records if r["task"] == t]) for t in tasks}}


def pretraining_examples(mix_dir: Path, n: int, seq_len: int, eot_id: int, seed: int) -> list[dict[str, list[int]]]:
    """``n`` windows of ``seq_len`` tokens from the data mix's train streams at its chosen weights, as
    language-modelling examples (labels = inputs: loss on every token)."""
    from factory.train.lm_runs import load_streams, mix_data, normalize
    from factory.train.token_shards import read_mix

    if n <= 0:
        return []
    weights = normalize(read_mix(mix_dir)["weights"])
    streams = {k: s for k, s in load_streams(mix_dir, list(weights), "train").items() if len(s) > seq_len}
    if not streams:
        raise ValueError(f"data_mix {mix_dir} has no train stream longer than a window of {seq_len} tokens")
    data = mix_data(streams, {k: w for k, w in weights.items() if k in streams}, seq_len, eot_id, seed)
    return [{"input_ids": row, "labels": row} for row in data.batch(0, n)["input_ids"].tolist()]
