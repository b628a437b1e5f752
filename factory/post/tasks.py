"""Verifiable prompts: generators with a reference answer and a programmatic checker each
(recipe: "Capabilities/Code" — execution feedback as the source of truth; "Math Reasoning";
steerability/format following from "Post-training Data").

Four families, sized for what a tiny model can learn (a 0.74M-parameter decoder learns two-digit
addition to 100% greedy accuracy in ~1,500 steps when each digit is its own token):

- ``arithmetic``: two-digit addition and subtraction; exact answer scores 1, a number with some
  right-aligned digits correct earns partial credit (so two wrong answers can still be ranked).
- ``uppercase`` / ``word_count``: format constraints ("write the words X Y in uppercase", "reply
  with exactly N words about T and U"), scored by how closely the response follows the constraint.
- ``code``: tiny Python functions of one or two steps ("returns (x + 7) * 3"), scored by the
  fraction of unit tests (``assert f(<arg>) == <value>`` snippets) that pass when the code runs in
  the sandbox (``factory.post.sandbox``: Code Shield scan first, then an isolated run; a syntax
  error, a block, a timeout or any exit but the harness's scores 0).

Each family's key space holds at least ~5,000 distinct prompts, so its test split (20%) holds
~1,000: enough for a 95% interval of about ±3 points on the family's accuracy. Held-out prompts are
new combinations of words, topics and operations that training prompts also use one by one (what a
family tests is whether the model composes them).

A family is one ``TaskFamily`` (generator + checker + system prompt) in ``FAMILIES``; a new family is one entry there.
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
from functools import lru_cache
from typing import Any, Literal

from factory.post.sandbox import score_code

Split = Literal["train", "dev", "test"]
TEST_FRACTION = 0.2  # share of each task's key space reserved for the report
DEV_FRACTION = 0.1  # share reserved for choices and gates (taken from what was train, so test stays put)
CODE_TIMEOUT_S = 2.0  # generous for tiny functions; an endless loop scores 0

_WORDS = ("apple", "river", "stone", "cloud", "tiger", "green", "light", "music", "paper", "house", "bread",
          "chair", "dream", "earth", "flame", "glass", "horse", "juice", "knife", "lemon", "money", "night",
          "ocean", "plant", "queen", "radio", "snake", "table", "uncle", "voice", "water", "youth", "zebra",
          "storm", "sugar", "train", "wheel", "smile", "tower", "beach", "cabin", "candy", "coast", "crown",
          "dance", "eagle", "fence", "field", "forest", "garden", "honey", "island", "jacket", "kettle",
          "ladder", "market", "needle", "orange", "pencil", "pillow", "rabbit", "saddle", "silver", "spoon",
          "stamp", "sweater", "thread", "ticket", "tomato", "valley", "wagon", "window", "winter", "basket",
          "bottle", "bridge", "button", "carpet", "castle", "doctor")
# Topic -> ten words about it (word_count references draw from the topics a prompt names).
_TOPICS: dict[str, tuple[str, ...]] = {
    "colors": ("red", "blue", "green", "yellow", "black", "white", "pink", "gray", "brown", "purple"),
    "animals": ("cat", "dog", "horse", "bird", "fish", "cow", "lion", "goat", "wolf", "bear"),
    "fruit": ("apple", "pear", "plum", "grape", "lemon", "lime", "peach", "mango", "melon", "cherry"),
    "weather": ("rain", "snow", "wind", "sun", "fog", "storm", "hail", "cloud", "frost", "heat"),
    "food": ("bread", "rice", "soup", "cheese", "egg", "salt", "milk", "pasta", "bean", "cake"),
    "music": ("song", "drum", "piano", "bass", "note", "choir", "tune", "flute", "violin", "beat"),
    "school": ("book", "pen", "desk", "class", "test", "chalk", "bell", "lesson", "grade", "ruler"),
    "sea": ("wave", "ship", "sand", "salt", "tide", "shell", "reef", "coral", "whale", "port"),
    "city": ("street", "bus", "park", "tower", "shop", "bank", "bridge", "square", "metro", "cafe"),
    "sport": ("ball", "goal", "team", "race", "score", "coach", "match", "net", "bat", "court"),
    "kitchen": ("pot", "pan", "knife", "spoon", "fork", "oven", "sink", "plate", "bowl", "cup"),
    "garden": ("rose", "tree", "grass", "seed", "soil", "leaf", "root", "bush", "hose", "rake"),
    "body": ("hand", "foot", "head", "arm", "leg", "eye", "ear", "nose", "knee", "back"),
    "travel": ("map", "bag", "road", "train", "plane", "hotel", "ticket", "tour", "trip", "guide"),
    "house": ("door", "roof", "wall", "floor", "room", "stair", "lamp", "bed", "sofa", "shelf"),
    "tools": ("hammer", "saw", "drill", "nail", "screw", "wrench", "tape", "glue", "level", "file"),
    "space": ("star", "moon", "planet", "comet", "orbit", "rocket", "galaxy", "sky", "mars", "venus"),
    "farm": ("barn", "tractor", "hay", "sheep", "pig", "hen", "field", "fence", "crop", "wheat"),
    "clothes": ("shirt", "coat", "hat", "sock", "shoe", "scarf", "dress", "belt", "glove", "boot"),
    "office": ("memo", "chair", "phone", "email", "file", "desk", "clip", "stamp", "folder", "badge"),
    "forest": ("oak", "pine", "moss", "fern", "deer", "owl", "trail", "log", "cone", "bark"),
    "river": ("bank", "boat", "fish", "stream", "delta", "dam", "mill", "ford", "reed", "rapid"),
    "games": ("card", "dice", "chess", "puzzle", "board", "token", "pawn", "queen", "king", "round"),
    "light": ("lamp", "candle", "torch", "beam", "glow", "flash", "spark", "shade", "ray", "bulb"),
}
_COUNTS = range(2, 11)  # word_count's N
# Code: the first step of f, then an optional second step applied to its result.
# name -> (phrase with {k}, Python expression of `v` with {k}, Python function of (v, k))
_STEPS: dict[str, tuple[str, str, Callable[[int, int], int]]] = {
    "add": ("plus {k}", "{v} + {k}", lambda v, k: v + k),
    "sub": ("minus {k}", "{v} - {k}", lambda v, k: v - k),
    "mul": ("times {k}", "{v} * {k}", lambda v, k: v * k),
    "mod": ("modulo {k}", "{v} % {k}", lambda v, k: v % k),
}
_FIRST_STEPS = ("add", "sub", "mul")
_FIRST_K = range(2, 61)
_SECOND_K = range(2, 10)
_CODE_INPUTS = (0, 3, -4, 10)
# Single-step functions that take no second step: name -> (prompt with {k}, body with {k}, inputs, f(input, k)).
_CODE: dict[str, tuple[str, str, tuple[Any, ...], Callable[[Any, int], Any]]] = {
    "gt": ("Write a Python function f(x) that returns True if x is greater than {k}.", "return x > {k}",
           (0, 5, 50, 100), lambda x, k: x > k),
    "rep": ("Write a Python function f(s) that returns the string s repeated {k} times.", "return s * {k}",
            ("a", "ab", ""), lambda s, k: s * k),
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
    words = rng.sample(_WORDS, 2)
    phrase = " ".join(words)
    return TaskPrompt("uppercase", f"upper:{phrase}", f"Write the words {phrase} in uppercase.", phrase.upper(),
                      {"word": phrase})


def _word_count(rng: random.Random) -> TaskPrompt:
    n = rng.choice(_COUNTS)
    topics = sorted(rng.sample(sorted(_TOPICS), rng.choice((1, 2, 3))))
    pool = sorted({w for t in topics for w in _TOPICS[t]})
    about = topics[0] if len(topics) == 1 else ", ".join(topics[:-1]) + " and " + topics[-1]
    return TaskPrompt("word_count", f"words:{n}:{about}", f"Reply with exactly {n} words about {about}.",
                      " ".join(rng.sample(pool, n)), {"n": n})


def _code(rng: random.Random) -> TaskPrompt:
    if rng.random() < 0.1:
        name, k = rng.choice(sorted(_CODE)), rng.choice(_FIRST_K)
        prompt, body, inputs, expected = _CODE[name]
        arg = "s" if name == "rep" else "x"
        tests = [f"assert f({a!r}) == {expected(a, k)!r}" for a in inputs]
        return TaskPrompt("code", f"code:{name}:{k}", prompt.format(k=k), f"def f({arg}):\n    {body.format(k=k)}",
                          {"tests": tests})
    steps = [(rng.choice(_FIRST_STEPS), rng.choice(_FIRST_K))]
    if rng.random() < 0.85:
        steps.append((rng.choice(sorted(_STEPS)), rng.choice(_SECOND_K)))
    phrase, expr = "x", "x"
    for i, (name, k) in enumerate(steps):
        words, template, _ = _STEPS[name]
        phrase = f"{phrase} {words.format(k=k)}" if i == 0 else f"({phrase}) {words.format(k=k)}"
        expr = template.format(v=expr if i == 0 else f"({expr})", k=k)

    def f(x: int) -> int:
        for name, k in steps:
            x = _STEPS[name][2](x, k)
        return x

    key = "code:" + ":".join(f"{name}{k}" for name, k in steps)
    tests = [f"assert f({a!r}) == {f(a)!r}" for a in _CODE_INPUTS]
    return TaskPrompt("code", key, f"Write a Python function f(x) that returns {phrase}.",
                      f"def f(x):\n    return {expr}", {"tests": tests})




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


@lru_cache(maxsize=1 << 16)
def _score_program(code: str, tests: tuple[str, ...]) -> float:
    # A sandboxed run costs ~0.1 s; the same program comes back often (K samples of one prompt, the
    # rounds' models answering the same held-out prompt alike), and its score depends on nothing else.
    return score_code(code, tests, timeout_s=CODE_TIMEOUT_S)


def _score_code(p: TaskPrompt, response: str) -> float:
    return _score_program(extract_code(response), tuple(p.params["tests"]))


def score(p: TaskPrompt, response: str) -> float:
    """How well ``response`` solves ``p``: 1.0 is fully correct, 0.0 is no credit."""
    return FAMILIES[p.task].check(p, response)


@dataclass(frozen=True)
class TaskFamily:
    """What a verifiable task family provides: a generator of prompts with their content key and
    reference (the key's hash sets the split), and a checker scoring a response in [0, 1]. The
    annotator, rejection sampling and the evaluations need nothing else from a family."""

    name: str
    generate: Callable[[random.Random], TaskPrompt]
    check: Callable[[TaskPrompt, str], float]
    # The capability's system prompt: steers rejection sampling toward the family's preferred form
    # (recipe, "SFT Data": "we use system prompts to steer RS responses to conform with desirable
    # tone, style, or formatting, which might be different for different capabilities").
    system_prompt: str


FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (
    TaskFamily("arithmetic", _arithmetic, _score_arithmetic, "Answer with the number only."),
    TaskFamily("uppercase", _uppercase, _score_uppercase, "Answer with the words in capital letters only."),
    TaskFamily("word_count", _word_count, _score_word_count, "Answer with the words only, separated by spaces."),
    TaskFamily("code", _code, _score_code, "Answer with one Python function definition only."),
)}
TASKS = tuple(FAMILIES)
