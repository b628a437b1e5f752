"""Verifiable prompts: references score 1, checkers give graded partial credit, splits are disjoint."""

import json
import re

import pytest

from factory.post import sandbox
from factory.post.families import code
from factory.post.families.vocabulary import TOPICS
from factory.post.prompts import TaskPrompt, split_of
from factory.post.tasks import TASKS, sample_prompts, score

needs_isolation = pytest.mark.skipif(sandbox.isolation_error() is not None,
                                     reason=f"code answers are not run here: {sandbox.isolation_error()}")


@needs_isolation
def test_every_reference_scores_one_and_prompts_are_in_their_split():
    for split in ("train", "dev", "test"):
        prompts = sample_prompts(40, 3, split, dict.fromkeys(TASKS, 1.0))
        assert len(prompts) == 40 and {p.task for p in prompts} == set(TASKS)
        for p in prompts:
            assert split_of(p.key) == split
            assert score(p, p.reference) == 1.0


def test_train_dev_and_test_keys_never_overlap():
    train = {p.key for p in sample_prompts(300, 0, "train", {"arithmetic": 1.0})}
    dev = {p.key for p in sample_prompts(100, 0, "dev", {"arithmetic": 1.0})}
    test = {p.key for p in sample_prompts(100, 0, "test", {"arithmetic": 1.0})}
    assert len(dev) == len(test) == 100 and not train & dev and not train & test and not dev & test


def test_two_step_code_prompts_compose_their_steps_in_order():
    p = next(q for q in sample_prompts(200, 1, "train", {"code": 1.0}) if re.fullmatch(r"code:add\d+:mul\d+", q.key))
    a, b = map(int, re.findall(r"\d+", p.key))
    assert p.prompt == f"Write a Python function f(x) that returns (x plus {a}) times {b}."
    assert p.reference == f"def f(x):\n    return (x + {a}) * {b}"
    assert p.params["tests"][1] == f"assert f(3) == {(3 + a) * b}"


@pytest.mark.parametrize("task", TASKS)
def test_each_family_has_a_thousand_distinct_test_prompts(task):
    # ~1,000 distinct test prompts per family bound accuracy's 95% interval near ±3 points.
    prompts = sample_prompts(1000, 0, "test", {task: 1.0})
    assert len({p.key for p in prompts}) == 1000
    # A key names the dialog's content: no two keys share an opening.
    assert len({json.dumps(p.opening()) for p in prompts}) == 1000


def test_word_count_references_use_the_named_topics():
    prompts = sample_prompts(300, 2, "train", {"word_count": 1.0})
    for p in prompts:
        topics = re.split(r", | and ", p.key.split(":", 2)[2])
        assert len(p.reference.split()) == p.params["n"] and all(
            any(w in TOPICS[t] for t in topics) for w in p.reference.split())


def test_arithmetic_partial_credit_by_right_aligned_digits():
    p = TaskPrompt("arithmetic", "arith:47+38", "What is 47 + 38?", "85", {"answer": 85})
    assert score(p, " 85 ") == 1.0
    assert score(p, "84") == 0.25  # one of two digits right
    assert score(p, "The answer is 85") == 0.5  # right number, extra words
    assert score(p, "12") == 0.0 and score(p, "no idea") == 0.0


def test_format_checkers():
    up = TaskPrompt("uppercase", "upper:tiger", "Write the word tiger in uppercase.", "TIGER", {"word": "tiger"})
    assert [score(up, r) for r in ("TIGER", "tiger", "LION", "lion")] == [1.0, 0.5, 0.25, 0.0]
    wc = TaskPrompt("word_count", "words:4:sea", "Reply with exactly 4 words about sea.", "a b c d", {"n": 4})
    assert [score(wc, r) for r in ("w w w w", "w w w", "w w w w w w w w w", "")] == [1.0, 0.75, 0.0, 0.0]


@needs_isolation
def test_code_checker_runs_unit_tests_in_the_sandbox(monkeypatch):
    p = next(q for q in sample_prompts(200, 0, "train", {"code": 1.0}) if re.fullmatch(r"code:add\d+", q.key))
    k = int(p.key.removeprefix("code:add"))
    assert p.prompt == f"Write a Python function f(x) that returns x plus {k}."
    assert score(p, f"```python\ndef f(x):\n    return x + {k}\n```") == 1.0
    assert score(p, "def f(x):\n    return x") == 0.0  # every test input is nonzero-offset
    assert score(p, f"def f(x):\n    return x + {k} if x > 0 else x") == 0.5  # 0 and -4 fail
    assert score(p, "def f(x) return") == 0.0  # does not parse
    assert p.params["tests"][:2] == [f"assert f(0) == {k}", f"assert f(3) == {3 + k}"]
    monkeypatch.setattr(code, "CODE_TIMEOUT_S", 0.3)
    assert score(p, "def f(x):\n    while True:\n        pass") == 0.0  # timed out


def test_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown tasks"):
        sample_prompts(1, 0, "train", {"poetry": 1.0})
