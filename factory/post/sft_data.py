"""The SFT data mix of one round (recipe: "SFT Data": rejection-sampled responses plus synthetic
data targeting specific capabilities).

Records are ``{"prompt", "response", "task", "key", "source"}`` with source ``rejection_sampling``
or ``synthetic``, and ``system`` where the dialog opens with a system prompt. Synthetic records are
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

from factory.post.rejection import Candidate
from factory.post.tasks import FAMILIES, TaskPrompt


def rejection_records(candidates: Sequence[Candidate]) -> list[dict[str, Any]]:
    """The RM-best response of each prompt; its checker score travels beside it (the checker annotates,
    the RM picks: recipe, "use our reward model to select the best candidate")."""
    return [
        {"prompt": c.prompt.prompt, "response": c.response, "task": c.prompt.task, "key": c.prompt.key,
         "source": "rejection_sampling", "reward": c.rewards[c.best], "task_score": c.task_scores[c.best]}
        for c in candidates
    ]


def synthetic_records(prompts: Sequence[TaskPrompt], system_share: float = 0.0, seed: int = 0) -> list[dict[str, Any]]:
    """The references as SFT records; about ``system_share`` of them open with their family's system prompt."""
    rng = random.Random(seed)
    out = []
    for p in prompts:
        record = {"prompt": p.prompt, "response": p.reference, "task": p.task, "key": p.key, "source": "synthetic"}
        if rng.random() < system_share:
            record["system"] = FAMILIES[p.task].system_prompt
        out.append(record)
    return out


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
