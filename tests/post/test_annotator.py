"""The programmatic annotator: ordering by checker score, four strength levels, edits, ties."""

import random

import pytest

from factory.post.annotator import (
    EDITED,
    STRENGTHS,
    AnnotatorConfig,
    Ranking,
    annotate,
    annotate_extremes,
    strength_of,
)
from factory.post.prompts import TaskPrompt

P = TaskPrompt("arithmetic", "arith:47+38", "What is 47 + 38?", "85", {"answer": 85})
NO_EDITS = AnnotatorConfig(edit_fraction=0.0)
ALWAYS_EDIT = AnnotatorConfig(edit_fraction=1.0)


def test_strength_levels_from_the_score_gap():
    t = (0.75, 0.5, 0.25)
    assert [strength_of(g, t) for g in (1.0, 0.75, 0.6, 0.3, 0.1)] == [
        "significantly better", "significantly better", "better", "slightly better", "marginally better"]
    assert set(STRENGTHS) == {"significantly better", "better", "slightly better", "marginally better"}
    with pytest.raises(ValueError):
        AnnotatorConfig(strength_thresholds=(0.2, 0.5, 0.75))


def test_higher_score_is_chosen_whatever_the_order():
    for a, b in ((("85", "m1"), ("12", "m2")), (("12", "m2"), ("85", "m1"))):
        r = annotate(P, a, b, NO_EDITS, random.Random(0))
        assert [x.text for x in r.responses] == ["85", "12"]
        assert r.strength == "significantly better" and not r.edited
    r = annotate(P, ("12", "m2"), ("84", "m1"), NO_EDITS, random.Random(0))  # 0.0 vs 0.25 partial credit
    assert [x.text for x in r.responses] == ["84", "12"] and r.strength == "slightly better"


def test_edit_makes_a_triple_only_when_the_chosen_is_imperfect():
    r = annotate(P, ("84", "m1"), ("12", "m2"), ALWAYS_EDIT, random.Random(0))
    assert [x.source for x in r.responses] == [EDITED, "m1", "m2"] and r.edited
    assert r.responses[0].text == "85" and r.responses[0].score == 1.0
    pairs = [(a.text, b.text) for a, b in r.pairs()]
    assert pairs == [("85", "84"), ("85", "12"), ("84", "12")]
    perfect = annotate(P, ("85", "m1"), ("12", "m2"), ALWAYS_EDIT, random.Random(0))
    assert len(perfect.responses) == 2 and not perfect.edited


def test_ties_are_dropped_unless_edited():
    assert annotate(P, ("cat", "m1"), ("dog", "m2"), NO_EDITS, random.Random(0)) is None
    r = annotate(P, ("cat", "m1"), ("dog", "m2"), ALWAYS_EDIT, random.Random(0))
    assert [x.source for x in r.responses] == [EDITED, "m1"] and r.strength == "significantly better"


def test_extremes_of_several_responses_make_the_pair():
    # 84 is partial credit (0.25), 85 correct, 12 and 13 wrong: the widest gap is 85 over the first wrong one.
    texts = [("84", "m"), ("12", "m"), ("85", "m"), ("13", "m")]
    r = annotate_extremes(P, texts, NO_EDITS, random.Random(0))
    assert [x.text for x in r.responses] == ["85", "12"] and r.strength == "significantly better"
    assert annotate_extremes(P, [("12", "m"), ("13", "m"), ("cat", "m")], NO_EDITS, random.Random(0)) is None
    edited = annotate_extremes(P, [("12", "m"), ("84", "m")], ALWAYS_EDIT, random.Random(0))
    assert [x.text for x in edited.responses] == ["85", "84", "12"]


def test_ranking_round_trips_through_json_dict():
    r = annotate(P, ("84", "m1"), ("12", "m2"), ALWAYS_EDIT, random.Random(0))
    back = Ranking.from_dict(r.to_dict())
    assert back.prompt == r.prompt and back.responses == r.responses and back.strength == r.strength
