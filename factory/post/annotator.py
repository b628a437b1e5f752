"""The programmatic annotator: the documented stand-in for the recipe's human annotators
(recipe: "Post-training Data", preference annotation).

Given a prompt and two responses from two different models, the annotator scores each with the
prompt's checker (``factory.post.tasks.score``), prefers the higher one and rates the strength of
the preference on the recipe's four levels from the score gap. Like the recipe's editing step, it
then writes an improved response for some prompts whose preferred answer is not perfect (its
correction is the task's reference answer), giving a ranking edited > chosen > rejected. When
both responses score the same there is no preference between them: the pair is dropped unless an
edit is made, in which case the ranking is edited > one of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from pydantic import Field, field_validator

from factory.core.stage import StageConfig
from factory.post.prompts import TaskPrompt
from factory.post.tasks import score

STRENGTHS = ("significantly better", "better", "slightly better", "marginally better")
EDITED = "annotator_edit"


class AnnotatorConfig(StageConfig):
    """How the annotator turns score gaps into strength levels and when it edits."""

    strength_thresholds: tuple[float, float, float] = Field(
        (0.75, 0.5, 0.25),
        description="Minimum score gap for significantly better / better / slightly better; smaller gaps are marginal.",
    )
    edit_fraction: float = Field(0.5, description="Chance of editing when the preferred response is not perfect.")

    @field_validator("strength_thresholds")
    @classmethod
    def _descending(cls, v: tuple[float, float, float]) -> tuple[float, float, float]:
        if not v[0] > v[1] > v[2] > 0:
            raise ValueError(f"strength thresholds must be strictly descending and positive, got {v}")
        return v


@dataclass
class Response:
    text: str
    source: str  # which model wrote it, or ``annotator_edit``
    score: float


@dataclass
class Ranking:
    """Responses to one prompt, best first, and the strength of the first model preference."""

    prompt: TaskPrompt
    responses: list[Response]
    strength: str

    @property
    def edited(self) -> bool:
        return self.responses[0].source == EDITED

    def pairs(self) -> list[tuple[Response, Response]]:
        """Every ordered (better, worse) pair of the ranking: edited>chosen, edited>rejected, chosen>rejected."""
        return list(combinations(self.responses, 2))

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt.to_dict(), "strength": self.strength, "edited": self.edited,
                "responses": [vars(r) for r in self.responses]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ranking:
        return cls(TaskPrompt.from_dict(d["prompt"]), [Response(**r) for r in d["responses"]], d["strength"])


def strength_of(gap: float, thresholds: tuple[float, float, float]) -> str:
    # One threshold fewer than levels: a gap below every threshold gets the last level.
    for level, minimum in zip(STRENGTHS, thresholds, strict=False):
        if gap >= minimum:
            return level
    return STRENGTHS[-1]


def annotate(prompt: TaskPrompt, a: tuple[str, str], b: tuple[str, str], cfg: AnnotatorConfig,
             rng: random.Random) -> Ranking | None:
    """Rank two (text, source) responses; None when they tie and no edit is made."""
    ra, rb = (Response(text, source, score(prompt, text)) for text, source in (a, b))
    chosen, rejected = (ra, rb) if ra.score >= rb.score else (rb, ra)
    edit = None
    if chosen.score < 1.0 and rng.random() < cfg.edit_fraction:
        edit = Response(prompt.reference, EDITED, score(prompt, prompt.reference))
    if chosen.score == rejected.score:
        if edit is None:
            return None
        return Ranking(prompt, [edit, chosen], strength_of(edit.score - chosen.score, cfg.strength_thresholds))
    ranked = [chosen, rejected] if edit is None else [edit, chosen, rejected]
    return Ranking(prompt, ranked, strength_of(chosen.score - rejected.score, cfg.strength_thresholds))


def annotate_extremes(prompt: TaskPrompt, responses: list[tuple[str, str]], cfg: AnnotatorConfig,
                      rng: random.Random) -> Ranking | None:
    """Rank the best- and the worst-scored of several (text, source) responses to one prompt (the
    first of each on ties): the widest preference among them, as ``annotate`` ranks two."""
    scores = [score(prompt, text) for text, _ in responses]
    best = max(range(len(responses)), key=scores.__getitem__)
    worst = min(range(len(responses)), key=scores.__getitem__)
    return annotate(prompt, responses[best], responses[worst], cfg, rng)
