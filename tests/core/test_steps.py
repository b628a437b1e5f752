"""The step recorder: seconds and counts per named step, repeated and nested names, errors."""

from __future__ import annotations

import time

import pytest

from factory.core.steps import Steps


def test_a_step_records_its_seconds_and_counts():
    lines: list[str] = []
    steps = Steps("stage", lines.append)
    with steps.step("heuristics") as s:
        time.sleep(0.02)
        s.count(kept=8, dropped=2)
        s.count(dropped=1)
    with steps.step("topics"):
        pass
    summary = steps.summary()
    assert list(summary) == ["heuristics", "topics"]
    assert summary["heuristics"]["seconds"] >= 0.02
    assert summary["heuristics"]["counts"] == {"kept": 8, "dropped": 3}
    assert summary["topics"] == {"seconds": pytest.approx(0.0, abs=0.01), "counts": {}}
    assert steps.total_seconds >= summary["heuristics"]["seconds"] - 0.0005  # the summary rounds to 1 ms
    assert lines[0].startswith("stage: heuristics ") and "kept=8, dropped=3" in lines[0]


def test_a_repeated_name_accumulates():
    steps = Steps("stage")
    for n in (1, 2, 3):
        with steps.step("experiment") as s:
            time.sleep(0.005)
            s.count(runs=1, tokens=n)
    (entry,) = steps.summary().values()
    assert entry["counts"] == {"runs": 3, "tokens": 6} and entry["seconds"] >= 0.015


def test_nested_steps_are_dotted_and_inside_the_outer_time():
    steps = Steps("stage")
    with steps.step("quality"):
        with steps.step("fasttext") as s:
            time.sleep(0.01)
            s.count(docs=4)
    summary = steps.summary()
    assert list(summary) == ["quality", "quality.fasttext"]
    assert summary["quality"]["seconds"] >= summary["quality.fasttext"]["seconds"] >= 0.01
    assert summary["quality.fasttext"]["counts"] == {"docs": 4} and summary["quality"]["counts"] == {}


def test_an_error_inside_a_step_is_recorded_and_propagates():
    lines: list[str] = []
    steps = Steps("stage", lines.append)
    with pytest.raises(ValueError, match="boom"):
        with steps.step("fit") as s:
            s.count(points=2)
            time.sleep(0.005)
            raise ValueError("boom")
    with steps.step("after"):  # the recorder is usable after a failed step
        pass
    summary = steps.summary()
    assert summary["fit"]["error"] == "ValueError" and summary["fit"]["seconds"] >= 0.005
    assert summary["fit"]["counts"] == {"points": 2} and "error" not in summary["after"]
    assert "FAILED (ValueError)" in lines[0] and list(summary) == ["fit", "after"]
