"""The preference_data stage (recipe: "Post-training Data", preference annotation).

As in Llama 2/3, each prompt gets two responses from two DIFFERENT models — the annealed
checkpoint and the two branched experts take turns pairing up — and the annotator
(``factory.post.annotator``, the stand-in for human annotators) ranks them with one of four
strength levels, adding an edited response for some prompts (edited > chosen > rejected).

Artifact: ``preferences.jsonl``, one ranking per line::

    {"prompt": {task, key, prompt, reference, params}, "strength": "better", "edited": true,
     "models": ["annealed_checkpoint", "code_expert"],
     "responses": [{"text", "source", "score"}, ...]}      # best first
"""

from __future__ import annotations

import json
import random
from collections import Counter
from itertools import combinations
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.chat_format import load_chat_format
from factory.post.annotator import STRENGTHS, AnnotatorConfig, Ranking, annotate
from factory.post.sampling import SamplingConfig, load_policy, sample_responses
from factory.post.tasks import sample_prompts

PREFERENCES_FILE = "preferences.jsonl"
MODELS = ("annealed_checkpoint", "code_expert", "multilingual_expert")


class PreferenceConfig(StageConfig):
    """Prompts, decoding and annotation of the preference data collection."""

    prompts: int = Field(200, description="Training-split prompts to collect preferences on.")
    task_weights: dict[str, float] = Field(
        {"arithmetic": 0.55, "uppercase": 0.15, "word_count": 0.15, "code": 0.15},
        description="Relative frequency of each task family among the prompts.")
    sampling: SamplingConfig = Field(
        SamplingConfig(top_p=0.95, batch_size=64), description="How each model samples its response.")
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig, description="Strength levels and edits.")
    seed: int = Field(0, description="Seed of prompts, sampling and annotator edits.")


def read_rankings(folder: Path) -> list[Ranking]:
    lines = (folder / PREFERENCES_FILE).read_text().splitlines()
    return [Ranking.from_dict(json.loads(line)) for line in lines if line.strip()]


def ranking_counts(rankings: list[Ranking]) -> dict[str, Any]:
    """Counts per strength and per task, and the fraction with an edited response."""
    return {
        "rankings": len(rankings),
        "per_strength": {s: sum(r.strength == s for r in rankings) for s in STRENGTHS},
        "per_task": dict(sorted(Counter(r.prompt.task for r in rankings).items())),
        "edited_fraction": round(sum(r.edited for r in rankings) / len(rankings), 4) if rankings else 0.0,
        "triples": sum(len(r.responses) == 3 for r in rankings),
    }


def run_preference_data(cfg: PreferenceConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    fmt = load_chat_format(inputs["tokenizer"])
    prompts = sample_prompts(cfg.prompts, cfg.seed, "train", cfg.task_weights)
    pairs = list(combinations(MODELS, 2))
    assignment = [pairs[i % len(pairs)] for i in range(len(prompts))]  # two different models per prompt
    answers: dict[tuple[int, str], str] = {}
    for m, name in enumerate(MODELS):
        mine = [i for i, pair in enumerate(assignment) if name in pair]
        ctx.log(f"sampling {len(mine)} responses from {name}")
        texts = sample_responses(load_policy(inputs[name]), fmt, [prompts[i] for i in mine], 1, cfg.sampling,
                                 seed=cfg.seed * len(MODELS) + m)
        answers.update({(i, name): t[0] for i, t in zip(mine, texts, strict=True)})

    rng = random.Random(cfg.seed)
    rankings, rows, ties = [], [], 0
    model_scores: dict[str, list[float]] = {name: [] for name in MODELS}
    for i, (p, (a, b)) in enumerate(zip(prompts, assignment, strict=True)):
        ranking = annotate(p, (answers[i, a], a), (answers[i, b], b), cfg.annotator, rng)
        if ranking is None:
            ties += 1
            continue
        for r in ranking.responses:
            if r.source in model_scores:
                model_scores[r.source].append(r.score)
        rankings.append(ranking)
        rows.append(json.dumps({**ranking.to_dict(), "models": [a, b]}))
    if not rankings:
        raise ValueError(f"all {len(prompts)} prompts were ties without edits; raise annotator.edit_fraction")
    out.mkdir(parents=True, exist_ok=True)
    (out / PREFERENCES_FILE).write_text("\n".join(rows) + "\n")
    return {
        "prompts": len(prompts),
        "dropped_ties": ties,
        **ranking_counts(rankings),
        "pairs": sum(len(r.pairs()) for r in rankings),
        "mean_score_by_model_in_rankings": {k: round(sum(v) / len(v), 4) for k, v in model_scores.items() if v},
    }
