"""The SFT data mix of one round (recipe: "SFT Data": rejection-sampled responses plus synthetic
data targeting specific capabilities).

Records are ``{"prompt", "response", "task", "key", "source"}`` with source ``rejection_sampling``
or ``synthetic``. Synthetic records are the task generators' verified-correct solutions (the
recipe's synthetic capability data: arithmetic as in "Math Reasoning", unit-tested functions as in
"Capabilities/Code"). Records go through ``factory.post.qc`` before they are encoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.post.rejection import Candidate
from factory.post.tasks import TaskPrompt


def rejection_records(candidates: Sequence[Candidate], min_task_score: float) -> list[dict[str, Any]]:
    """The RM-best response of each prompt whose checker score reaches ``min_task_score``."""
    return [
        {"prompt": c.prompt.prompt, "response": c.response, "task": c.prompt.task, "key": c.prompt.key,
         "source": "rejection_sampling", "reward": c.rewards[c.best], "task_score": c.task_scores[c.best]}
        for c in candidates
        if c.task_scores[c.best] >= min_task_score
    ]


def synthetic_records(prompts: Sequence[TaskPrompt]) -> list[dict[str, Any]]:
    return [{"prompt": p.prompt, "response": p.reference, "task": p.task, "key": p.key, "source": "synthetic"}
            for p in prompts]
