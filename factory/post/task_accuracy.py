"""Held-out verifiable-prompt accuracy (recipe: "Results", post-trained model evaluation on
math, code and instruction following, here on ``factory.post.tasks``' held-out splits: ``dev``
for the stages' own measurements, which choices and release gates read, ``test`` for the report).

Each task gets the same number of held-out prompts; the model answers greedily in the chat format
and each answer is scored by the task's checker. ``accuracy`` counts fully correct answers,
``mean_score`` averages the checkers' partial credit; ``ci95`` is the half-width of accuracy's 95%
normal-approximation interval (1.96 sqrt(p(1-p)/n)). The same prompts (same ``n`` and ``seed``)
are used for every model, so the numbers of the SFT, DPO and chat models compare directly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from factory.model.chat_format import ChatFormat
from factory.post.prompts import Split, TaskPrompt
from factory.post.sampling import SamplingConfig, sample_responses
from factory.post.tasks import TASKS, sample_prompts, score

MAX_NEW_TOKENS = 48  # longer than every reference answer of the task generators (math traces: ~40)


def heldout_prompts(n: int, seed: int, split: Split) -> list[TaskPrompt]:
    """``n`` prompts of a held-out split (``dev`` or ``test``), evenly over the tasks (at least one per task)."""
    if split == "train":
        raise ValueError("held-out prompts come from the dev or test split, not train")
    per_task = max(1, n // len(TASKS))
    return [p for i, t in enumerate(TASKS) for p in sample_prompts(per_task, seed + i, split, {t: 1.0})]


def greedy_answers(model, fmt: ChatFormat, prompts: list[TaskPrompt], batch_size: int = 32) -> list[str]:
    """The model's greedy answer to each prompt (what every accuracy here scores)."""
    cfg = SamplingConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=0.0, batch_size=batch_size)
    return [r[0] for r in sample_responses(model, fmt, prompts, 1, cfg, seed=0)]


def evaluate(model, fmt: ChatFormat, prompts: list[TaskPrompt], batch_size: int = 32) -> dict[str, Any]:
    """Greedy answers scored by the checkers: overall and per-task accuracy and mean score."""
    answers = greedy_answers(model, fmt, prompts, batch_size)
    scores = [score(p, a) for p, a in zip(prompts, answers, strict=True)]
    result = _summary(scores)
    for task in sorted({p.task for p in prompts}):
        result[task] = _summary([s for p, s in zip(prompts, scores, strict=True) if p.task == task])
    return result


def _summary(scores: list[float]) -> dict[str, Any]:
    accuracy = _mean([s == 1.0 for s in scores])
    ci95 = 1.96 * math.sqrt(accuracy * (1.0 - accuracy) / len(scores)) if scores else 0.0
    return {"n": len(scores), "accuracy": accuracy, "ci95": round(ci95, 4), "mean_score": _mean(scores)}


def _mean(xs) -> float:
    xs = list(xs)
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def task_accuracy(model_folder: Path, tokenizer_folder: Path, n: int, seed: int, split: Split) -> dict[str, Any]:
    """Held-out task accuracy of a saved LM (checkpoint_io layout) with a tokenizer artifact."""
    from factory.model.chat_format import load_chat_format
    from factory.post.sampling import load_policy

    prompts = heldout_prompts(n, seed, split)
    return evaluate(load_policy(Path(model_folder)), load_chat_format(Path(tokenizer_folder)), prompts)
