"""Short-answer families (recipe: "Math Reasoning" at its simplest, and the format constraints of
"Post-training Data"), sized for what a tiny model can learn (a 0.74M-parameter decoder learns
two-digit addition to 100% greedy accuracy in ~1,500 steps when each digit is its own token):

- ``arithmetic``: two-digit addition and subtraction; exact answer scores 1, a number with some
  right-aligned digits correct earns partial credit (so two wrong answers can still be ranked).
- ``uppercase`` / ``word_count``: format constraints ("write the words X Y in uppercase", "reply
  with exactly N words about T and U"), scored by how closely the response follows the constraint.

Held-out prompts are new combinations of words, topics and numbers that training prompts also use
one by one (what a family tests is whether the model composes them).
"""

from __future__ import annotations

import random
import re

from factory.post.families.vocabulary import TOPICS, WORDS
from factory.post.prompts import TaskFamily, TaskPrompt

_COUNTS = range(2, 11)  # word_count's N


def _arithmetic(rng: random.Random) -> TaskPrompt:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-")
    if op == "-" and a < b:
        a, b = b, a  # keep answers non-negative
    answer = a + b if op == "+" else a - b
    return TaskPrompt("arithmetic", f"arith:{a}{op}{b}", f"What is {a} {op} {b}?", str(answer), {"answer": answer})


def _uppercase(rng: random.Random) -> TaskPrompt:
    words = rng.sample(WORDS, 2)
    phrase = " ".join(words)
    return TaskPrompt("uppercase", f"upper:{phrase}", f"Write the words {phrase} in uppercase.", phrase.upper(),
                      {"word": phrase})


def _word_count(rng: random.Random) -> TaskPrompt:
    n = rng.choice(_COUNTS)
    topics = sorted(rng.sample(sorted(TOPICS), rng.choice((1, 2, 3))))
    pool = sorted({w for t in topics for w in TOPICS[t]})
    about = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
    return TaskPrompt("word_count", f"words:{n}:{about}", f"Reply with exactly {n} words about {about}.",
                      " ".join(rng.sample(pool, n)), {"n": n})


def _first_int(text: str) -> int | None:
    m = re.search(r"-?\d+", text)
    return int(m.group()) if m else None


def _score_arithmetic(p: TaskPrompt, response: str) -> float:
    text = response.strip()
    if text == p.reference:
        return 1.0
    got = _first_int(text)
    if got is None:
        return 0.0
    want, have = p.reference, str(got)
    width = max(len(want), len(have))
    matches = sum(a == b for a, b in zip(want.rjust(width), have.rjust(width), strict=True))
    return 0.5 * matches / width  # a wrong answer never reaches an exact answer's score


def _score_uppercase(p: TaskPrompt, response: str) -> float:
    text = response.strip()
    word = p.params["word"]
    if text == word.upper():
        return 1.0
    if text.lower() == word:
        return 0.5  # the right word in the wrong case
    letters = [c for c in text if c.isalpha()]
    return 0.25 if letters and all(c.isupper() for c in letters) else 0.0


def _score_word_count(p: TaskPrompt, response: str) -> float:
    n = p.params["n"]
    count = len(response.split())
    return max(0.0, 1.0 - abs(count - n) / n)


ARITHMETIC = TaskFamily("arithmetic", _arithmetic, _score_arithmetic, "Answer with the number only.")
UPPERCASE = TaskFamily("uppercase", _uppercase, _score_uppercase, "Answer with the words in capital letters only.")
WORD_COUNT = TaskFamily("word_count", _word_count, _score_word_count,
                        "Answer with the words only, separated by spaces.")
