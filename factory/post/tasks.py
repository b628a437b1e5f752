"""Verifiable prompts: generators with a reference answer and a programmatic checker each
(recipe: "Capabilities/Code" — execution feedback as the source of truth; "Math Reasoning";
steerability/format following from "Post-training Data").

Three families, sized for what a tiny model can learn (a 0.74M-parameter decoder learns two-digit
addition to 100% greedy accuracy in ~1,500 steps when each digit is its own token):

- ``arithmetic``: two-digit addition and subtraction; exact answer scores 1, a number with some
  right-aligned digits correct earns partial credit (so two wrong answers can still be ranked).
- ``uppercase`` / ``word_count``: format constraints ("write the word X in uppercase", "reply with
  exactly N words about T"), scored by how closely the response follows the constraint.
- ``code``: tiny Python functions, scored by the fraction of unit tests (``assert f(<arg>) ==
  <value>`` snippets) that pass when the code runs in the sandbox (``factory.post.sandbox``:
  Code Shield scan first, then an isolated run; a syntax error, a block, a timeout or any exit
  but the harness's scores 0).

Every prompt has a ``key`` naming its content; a stable hash of the key puts it in the ``train``,
``dev`` or ``test`` split, so held-out prompts never appear in post-training data whatever seed
draws them. ``dev`` is what stages choose and gates decide by (the best DPO run, the release
gates); ``test`` is read only by the evaluation report.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from factory.post.sandbox import score_code

Split = Literal["train", "dev", "test"]
TASKS = ("arithmetic", "uppercase", "word_count", "code")
TEST_FRACTION = 0.2  # share of each task's key space reserved for the report
DEV_FRACTION = 0.1  # share reserved for choices and gates (taken from what was train, so test stays put)
CODE_TIMEOUT_S = 2.0  # generous for tiny functions; an endless loop scores 0

_WORDS = ("apple", "river", "stone", "cloud", "tiger", "green", "light", "music", "paper", "house", "bread",
          "chair", "dream", "earth", "flame", "glass", "horse", "juice", "knife", "lemon", "money", "night",
          "ocean", "plant", "queen", "radio", "snake", "table", "uncle", "voice", "water", "youth", "zebra",
          "storm", "sugar", "train", "wheel", "smile", "tower", "beach")
_TOPICS: dict[str, tuple[str, ...]] = {
    "colors": ("red", "blue", "green", "yellow", "black", "white", "pink"),
    "animals": ("cat", "dog", "horse", "bird", "fish", "cow", "lion"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "lime", "peach"),
    "weather": ("rain", "snow", "wind", "sun", "fog", "storm", "hail"),
    "food": ("bread", "rice", "soup", "cheese", "egg", "salt", "milk"),
    "music": ("song", "drum", "piano", "bass", "note", "choir", "tune"),
    "school": ("book", "pen", "desk", "class", "test", "chalk", "bell"),
    "sea": ("wave", "ship", "sand", "salt", "tide", "shell", "reef"),
}
# name -> (prompt with {k}, reference body with {k}, test inputs for k, expected f(input) for k)
_CODE: dict[str, tuple[str, str, Callable[[int], tuple[Any, ...]], Callable[[Any, int], Any]]] = {
    "add": ("Write a Python function f(x) that returns x plus {k}.", "return x + {k}",
            lambda k: (0, 3, -4, 10), lambda x, k: x + k),
    "sub": ("Write a Python function f(x) that returns x minus {k}.", "return x - {k}",
            lambda k: (0, 3, -4, 10), lambda x, k: x - k),
    "mul": ("Write a Python function f(x) that returns x times {k}.", "return x * {k}",
            lambda k: (0, 3, -4, 10), lambda x, k: x * k),
    "mod": ("Write a Python function f(x) that returns x modulo {k}.", "return x % {k}",
            lambda k: (0, 3, 17, 100), lambda x, k: x % k),
    "gt": ("Write a Python function f(x) that returns True if x is greater than {k}.", "return x > {k}",
           lambda k: (0, k, k + 1, 100), lambda x, k: x > k),
    "rep": ("Write a Python function f(s) that returns the string s repeated {k} times.", "return s * {k}",
            lambda k: ("a", "ab", ""), lambda s, k: s * k),
}


@dataclass(frozen=True)
class TaskPrompt:
    """One verifiable prompt: the user message, a correct reference response and checker params."""

    task: str
    key: str
    prompt: str
    reference: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "key": self.key, "prompt": self.prompt, "reference": self.reference,
                "params": self.params}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskPrompt:
        return cls(d["task"], d["key"], d["prompt"], d["reference"], dict(d["params"]))


def split_of(key: str) -> Split:
    h = int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64
    if h < TEST_FRACTION:
        return "test"
    return "dev" if h < TEST_FRACTION + DEV_FRACTION else "train"


def _arithmetic(rng: random.Random) -> TaskPrompt:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    op = rng.choice("+-")
    if op == "-" and a < b:
        a, b = b, a  # keep answers non-negative
    answer = a + b if op == "+" else a - b
    return TaskPrompt("arithmetic", f"arith:{a}{op}{b}", f"What is {a} {op} {b}?", str(answer), {"answer": answer})


def _uppercase(rng: random.Random) -> TaskPrompt:
    w = rng.choice(_WORDS)
    return TaskPrompt("uppercase", f"upper:{w}", f"Write the word {w} in uppercase.", w.upper(), {"word": w})


def _word_count(rng: random.Random) -> TaskPrompt:
    n, topic = rng.randint(2, 5), rng.choice(sorted(_TOPICS))
    words = rng.sample(_TOPICS[topic], n)
    return TaskPrompt("word_count", f"words:{n}:{topic}", f"Reply with exactly {n} words about {topic}.",
                      " ".join(words), {"n": n})


def _code(rng: random.Random) -> TaskPrompt:
    name, k = rng.choice(sorted(_CODE)), rng.randint(2, 9)
    prompt, body, inputs, expected = _CODE[name]
    arg = "s" if name == "rep" else "x"
    reference = f"def f({arg}):\n    {body.format(k=k)}"
    tests = [f"assert f({a!r}) == {expected(a, k)!r}" for a in inputs(k)]
    return TaskPrompt("code", f"code:{name}:{k}", prompt.format(k=k), reference, {"tests": tests})


_GENERATORS = {"arithmetic": _arithmetic, "uppercase": _uppercase, "word_count": _word_count, "code": _code}


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
        p = _GENERATORS[rng.choices(names, [weights[t] for t in names])[0]](rng)
        attempts += 1
        if split_of(p.key) != split:
            continue
        # Small key spaces (code, uppercase) run out of distinct prompts: then repeats are allowed.
        if p.key in seen and attempts < 50 * n:
            continue
        seen.add(p.key)
        out.append(p)
    return out


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


def extract_code(response: str) -> str:
    m = re.search(r"```(?:python)?\n(.*?)```", response, re.S)
    return (m.group(1) if m else response).strip()


def _score_code(p: TaskPrompt, response: str) -> float:
    return score_code(extract_code(response), p.params["tests"], timeout_s=CODE_TIMEOUT_S)


_CHECKERS = {"arithmetic": _score_arithmetic, "uppercase": _score_uppercase, "word_count": _score_word_count,
             "code": _score_code}


def score(p: TaskPrompt, response: str) -> float:
    """How well ``response`` solves ``p``: 1.0 is fully correct, 0.0 is no credit."""
    return _CHECKERS[p.task](p, response)
