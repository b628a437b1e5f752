"""The preference_data stage (recipe: "Post-training Data", preference annotation).

As in Llama 2/3, each prompt gets two responses from two DIFFERENT models and the annotator
(``factory.post.annotator``, the stand-in for human annotators) ranks them with one of four
strength levels, adding an edited response for some prompts (edited > chosen > rejected).

Each round collects fresh preferences from the latest models (recipe: "deploy multiple models for
annotation after each round and sample two responses from two different models"): one
response always comes from the round's policy — round 1 the annealed checkpoint, round k the
previous round's DPO model — and the other from the domain's expert (code prompts: the code
expert; multilingual prompts: the multilingual expert) or else the round's partner — round 1 the
multilingual expert, round k the previous round's SFT model (``model_pair``). The same stage
function writes ``preference_data`` (round 1) and ``preference_round_k``.

Artifact: ``preferences.jsonl``, one ranking per line::

    {"prompt": {task, key, prompt, reference, params}, "strength": "better", "edited": true,
     "models": ["annealed_checkpoint", "code_expert"],
     "responses": [{"text", "source", "score"}, ...]}      # best first
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.chat_format import load_chat_format
from factory.post.annotator import STRENGTHS, AnnotatorConfig, Ranking, annotate
from factory.post.round_assets import policy_key
from factory.post.sampling import SamplingConfig, load_policy, sample_responses
from factory.post.tasks import TASK_MIX, sample_prompts

PREFERENCES_FILE = "preferences.jsonl"
# Task family -> the expert that answers its prompts (recipe: the code expert for code, the multilingual
# expert "to collect higher quality annotations" for non-English prompts).
EXPERTS = {"code": "code_expert", "multilingual": "multilingual_expert"}


def round_models(round: int) -> tuple[str, str]:
    """(policy, partner) of a round's preference collection; experts join by task (``EXPERTS``)."""
    return policy_key(round), "multilingual_expert" if round == 1 else f"sft_round_{round - 1}"


def model_pair(task: str, round: int) -> tuple[str, str]:
    """The two models answering a prompt of ``task`` in round ``round``."""
    policy, partner = round_models(round)
    return policy, EXPERTS.get(task, partner)


class PreferenceConfig(StageConfig):
    """Prompts, decoding and annotation of the preference data collection."""

    prompts: int = Field(200, description="Training-split prompts to collect preferences on.")
    task_weights: dict[str, float] = Field(
        default_factory=lambda: dict(TASK_MIX),
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


def _mean(xs: list[float]) -> float:
    # (The stage function takes a ``round`` argument, which shadows the builtin there.)
    return round(sum(xs) / len(xs), 4)


def run_preference_data(cfg: PreferenceConfig, inputs: dict[str, Path], out: Path, ctx: StageContext,
                        round: int = 1) -> dict[str, Any]:
    fmt = load_chat_format(inputs["tokenizer"])
    seed = cfg.seed + round - 1
    prompts = sample_prompts(cfg.prompts, seed, "train", cfg.task_weights)
    assignment = [model_pair(p.task, round) for p in prompts]
    models = sorted({name for pair in assignment for name in pair})
    answers: dict[tuple[int, str], str] = {}
    for m, name in enumerate(models):
        mine = [i for i, pair in enumerate(assignment) if name in pair]
        ctx.log(f"sampling {len(mine)} responses from {name}")
        texts = sample_responses(load_policy(inputs[name]), fmt, [prompts[i] for i in mine], 1, cfg.sampling,
                                 seed=seed * 8 + m)
        answers.update({(i, name): t[0] for i, t in zip(mine, texts, strict=True)})

    rng = random.Random(seed)
    rankings, rows, ties = [], [], 0
    model_scores: dict[str, list[float]] = {name: [] for name in models}
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
        "round": round,
        "models": models,
        "prompts": len(prompts),
        "dropped_ties": ties,
        **ranking_counts(rankings),
        "pairs": sum(len(r.pairs()) for r in rankings),
        "mean_score_by_model_in_rankings": {k: _mean(v) for k, v in model_scores.items() if v},
    }
