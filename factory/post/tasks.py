"""The verifiable task families and drawing prompts from them (recipe: "Post-training Data",
"Capabilities" — each capability a generator with a programmatic checker; execution feedback and
verified answers as the source of truth).

Families (``factory/post/families/``, one module each):

- ``arithmetic``, ``uppercase``, ``word_count`` (``basic``): short answers and format constraints;
- ``code`` (``code``): tiny Python functions checked by unit tests run in the sandbox;
- ``math``, ``multilingual`` (``math_word``): two-step word problems with step-by-step solutions,
  in English and in German, French and Spanish (the answer's language checked by LID);
- ``steer`` (``steer``): a system prompt's format or persona constraint held over a two-turn dialog.

Each family's key space holds at least ~5,000 distinct prompts, so its test split (20%) holds
~1,000: enough for a 95% interval of about ±3 points. Held-out prompts are new combinations of the
pieces training prompts use one by one. A new family is one ``TaskFamily`` in ``FAMILIES``.
``dev`` is what stages choose and gates decide by (the best DPO run, the release gates); ``test``
is read only by the evaluation report.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from factory.post.families.basic import ARITHMETIC, UPPERCASE, WORD_COUNT
from factory.post.families.code import CODE
from factory.post.families.math_word import MATH, MULTILINGUAL
from factory.post.families.steer import STEER
from factory.post.prompts import Split, TaskFamily, TaskPrompt, split_of

FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (
    ARITHMETIC, UPPERCASE, WORD_COUNT, CODE, MATH, MULTILINGUAL, STEER)}
TASKS = tuple(FAMILIES)
# Each family's share of a round's prompts (preferences, rejection sampling, synthetic data, on-policy
# pairs): arithmetic keeps the largest share, as the family the tiny models learn slowest.
TASK_MIX: dict[str, float] = {"arithmetic": 0.3, "uppercase": 0.1, "word_count": 0.1, "code": 0.1, "math": 0.15,
                              "multilingual": 0.15, "steer": 0.1}


def sample_prompts(n: int, seed: int, split: Split, weights: Mapping[str, float]) -> list[TaskPrompt]:
    """``n`` prompts of one split, tasks drawn by ``weights``; distinct keys while the split has them."""
    unknown = set(weights) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown tasks {sorted(unknown)}; valid: {', '.join(TASKS)}")
    names = [t for t in TASKS if weights.get(t, 0) > 0]
    if not names:
        raise ValueError("task weights select no task")
    rng = random.Random(seed)
    out: list[TaskPrompt] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        p = FAMILIES[rng.choices(names, [weights[t] for t in names])[0]].generate(rng)
        attempts += 1
        if split_of(p.key) != split:
            continue
        # A split asked for more prompts than its key space holds repeats some rather than loop forever.
        if p.key in seen and attempts < 50 * n:
            continue
        seen.add(p.key)
        out.append(p)
    return out


def score(p: TaskPrompt, response: str) -> float:
    """How well ``response`` solves ``p``: 1.0 is fully correct, 0.0 is no credit."""
    return FAMILIES[p.task].check(p, response)
