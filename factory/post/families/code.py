"""Tiny Python functions checked by execution (recipe: "Capabilities/Code" — execution feedback as
the source of truth): one- or two-step functions ("returns (x + 7) * 3"), scored by the fraction
of unit tests (``assert f(<arg>) == <value>`` snippets) that pass when the code runs in the sandbox
(``factory.post.sandbox``: Code Shield scan first, then an isolated run; a syntax error, a block, a
timeout or any exit but the harness's scores 0).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from factory.post.prompts import TaskFamily, TaskPrompt
from factory.post.sandbox import score_code

CODE_TIMEOUT_S = 2.0  # generous for tiny functions; an endless loop scores 0
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


CODE = TaskFamily("code", _code, _score_code, "Answer with one Python function definition only.")
