"""Needle-in-a-haystack: can the model retrieve a pass key planted in long filler text (recipe:
"Pre-Training Recipe", long-context pre-training is gated on solving NIAH up to the new length).

A prompt of ``length`` tokens is filler text from the corpus with a needle sentence ("The pass key
is 4821.") inserted at a relative ``depth`` (0 = start, 1 = just before the question), followed by
the question "What is the pass key? The pass key is" (the wording is a ``NeedleTemplate``).
Retrieval is scored by log-likelihood ranking: the true key must get a higher log-probability
than every one of ``n_distractors`` random keys of the same number of digits (chance =
1 / (n_distractors + 1)). Ranking is used
rather than greedy decoding because a model of a few million parameters rarely emits an exact
multi-digit key, yet may already prefer the right one; the table reports that preference honestly.

``NeedleSource`` makes training windows of the same form, which long-context training mixes in
at a small rate so the gate is learnable by a tiny model. Training and its gate use
``TRAINING_TEMPLATE``; the eval report measures with ``HELD_OUT_TEMPLATE``, a wording training never
sees, on validation filler, so it measures retrieval over the context rather than a memorized form.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class NeedleTemplate:
    """The wording of a needle example; ``{key}`` marks the pass key."""

    needle: str
    question: str
    answer: str = " {key}"


TRAINING_TEMPLATE = NeedleTemplate("The pass key is {key}.", " What is the pass key? The pass key is")
HELD_OUT_TEMPLATE = NeedleTemplate("Note that the access number reads {key}.",
                                   " Which access number was noted above? It reads")

Encode = Callable[[str], list[int]]


@dataclass(frozen=True)
class NiahExample:
    prompt: np.ndarray  # [length - len(answer)] token ids: filler with the needle, then the question
    candidates: list[np.ndarray]  # answer token ids; candidates[0] is the true key
    needle_start: int  # index of the needle's first token in ``prompt``
    depth: float
    length: int


def _key(rng: np.random.Generator, digits: int) -> str:
    return "".join(str(d) for d in [rng.integers(1, 10), *rng.integers(0, 10, digits - 1)])


def plant(filler: np.ndarray, needle: np.ndarray, question: np.ndarray, prompt_len: int, depth: float,
          offset: int) -> tuple[np.ndarray, int]:
    """Filler from ``offset`` with ``needle`` inserted at ``depth`` of the haystack, then ``question``.

    Returns (prompt of ``prompt_len`` tokens, needle start). The haystack holds
    prompt_len - len(needle) - len(question) filler tokens; the needle starts after
    round(depth * haystack) of them.
    """
    if not 0.0 <= depth <= 1.0:
        raise ValueError(f"depth must be in [0, 1], got {depth}")
    hay = prompt_len - len(needle) - len(question)
    if hay < 1:
        raise ValueError(f"length {prompt_len} leaves no room for filler around a {len(needle)}-token needle "
                         f"and a {len(question)}-token question")
    if len(filler) == 0:
        raise ValueError("no filler tokens to build a haystack from")
    if len(filler) < hay:  # a short held-out stream is repeated: a haystack needs length, not novelty
        filler = np.resize(filler, hay)
    start = offset % (len(filler) - hay + 1)
    text = filler[start : start + hay]
    at = int(round(depth * hay))
    prompt = np.concatenate([text[:at], needle, text[at:], question]).astype(np.int64)
    return prompt, at


class NiahBuilder:
    """Builds needle examples from a tokenizer's ``encode`` and a filler token stream.

    ``filler`` has its document separators removed: the haystack reads as one long document.
    """

    def __init__(self, encode: Encode, filler: np.ndarray, eot_id: int, key_digits: int = 4,
                 template: NeedleTemplate = TRAINING_TEMPLATE):
        if key_digits < 1:
            raise ValueError(f"key_digits must be >= 1, got {key_digits}")
        self.encode = encode
        filler = np.asarray(filler)  # a memory-mapped TokenStream is loaded here: the haystack reads all of it
        self.filler = filler[filler != eot_id].astype(np.int64)
        self.key_digits = key_digits
        self.template = template
        self.question = np.asarray(encode(template.question), dtype=np.int64)

    def min_length(self) -> int:
        """Shortest prompt + answer that holds a needle, the question, an answer and one filler token."""
        # A key takes at most one token per digit; two tokens of slack for merges at its edges.
        t = self.template
        bare = len(self.encode(t.needle.format(key=""))) + len(self.encode(t.answer.format(key="")))
        return bare + 2 * self.key_digits + len(self.question) + 3

    def example(self, length: int, depth: float, rng: np.random.Generator, n_distractors: int) -> NiahExample:
        keys = [_key(rng, self.key_digits)]
        answers = [np.asarray(self.encode(self.template.answer.format(key=keys[0])), dtype=np.int64)]
        while len(keys) < n_distractors + 1:
            k = _key(rng, self.key_digits)
            ids = np.asarray(self.encode(self.template.answer.format(key=k)), dtype=np.int64)
            # Candidates of equal token length compare fairly by summed log-probability.
            if k not in keys and len(ids) == len(answers[0]):
                keys.append(k)
                answers.append(ids)
        needle = np.asarray(self.encode(self.template.needle.format(key=keys[0])), dtype=np.int64)
        prompt_len = length - len(answers[0])
        offset = int(rng.integers(0, max(1, len(self.filler))))
        prompt, at = plant(self.filler, needle, self.question, prompt_len, depth, offset)
        return NiahExample(prompt, answers, at, depth, length)


@torch.no_grad()
def candidate_logprobs(model: nn.Module, example: NiahExample) -> np.ndarray:
    """Sum of log p(answer tokens | prompt) for each candidate: [n_candidates]."""
    seqs = torch.from_numpy(np.stack([np.concatenate([example.prompt, c]) for c in example.candidates]))
    logp = torch.log_softmax(model(seqs).float(), dim=-1)  # [C, T, V]
    n = len(example.prompt)
    # The token at position n + j is predicted by position n + j - 1.
    idx = seqs[:, n:]
    picked = logp[:, n - 1 : -1].gather(-1, idx.unsqueeze(-1)).squeeze(-1)  # [C, len(answer)]
    return picked.sum(-1).numpy()


def retrieved(model: nn.Module, example: NiahExample) -> bool:
    scores = candidate_logprobs(model, example)
    return bool(scores[0] > scores[1:].max()) if len(scores) > 1 else True


def niah_table(
    model: nn.Module,
    builder: NiahBuilder,
    lengths: Sequence[int],
    depths: Sequence[float],
    *,
    trials: int,
    n_distractors: int,
    seed: int,
) -> dict:
    """Retrieval accuracy per depth x length, plus the mean per length and overall."""
    was_training = model.training
    model.eval()
    table: dict[str, dict[str, float]] = {}
    for d in depths:
        row = {}
        for length in lengths:
            rng = np.random.default_rng([seed, length, int(round(d * 1000))])
            hits = [retrieved(model, builder.example(length, d, rng, n_distractors)) for _ in range(trials)]
            row[str(length)] = float(np.mean(hits))
        table[f"{d:g}"] = row
    model.train(was_training)
    per_length = {str(n): float(np.mean([table[f"{d:g}"][str(n)] for d in depths])) for n in lengths}
    mean = float(np.mean(list(per_length.values()))) if per_length else None
    return {"table": table, "per_length": per_length, "mean": mean,
            "chance": 1.0 / (n_distractors + 1), "trials": trials}


class NeedleSource:
    """Training windows of needle examples (prompt + true key, ``seq_len`` tokens, one document).

    Shaped like ``PackedTokens.window`` so ``MixedTokens`` can mix it into a data mix; sample
    ``index`` always yields the same window (seeded by position), keeping resumption exact.
    """

    def __init__(self, builder: NiahBuilder, seq_len: int, seed: int = 0):
        self.builder, self.seq_len, self.seed = builder, seq_len, seed

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, index])
        ex = self.builder.example(self.seq_len, float(rng.random()), rng, n_distractors=0)
        ids = np.concatenate([ex.prompt, ex.candidates[0]])
        return ids, np.zeros_like(ids)
