"""Needle-in-a-haystack: the needle sits at the requested depth; candidates are fair; tables are shaped."""

import numpy as np
import pytest
import torch

from factory.data import tokenizer as T
from factory.eval import niah as N
from factory.model import tokenizer_files as F
from factory.model.flavors import model_args
from factory.model.llama import Transformer

TEXT = ["The pass key is 123. What is the pass key? The river runs near the old city."] * 20


@pytest.fixture(scope="module")
def builder():
    tok = T.train_bpe(TEXT, 320, num_special_tokens=16)
    encode = lambda s: tok.encode(s, add_special_tokens=False).ids  # noqa: E731
    eot = tok.token_to_id(F.END_OF_TEXT)
    filler = np.array(encode(" The river runs near the old city.") * 40 + [eot] + encode(" Old city."), dtype=np.uint32)
    return N.NiahBuilder(encode, filler, eot, key_digits=4)


def test_plant_puts_the_needle_at_the_requested_depth():
    filler = np.arange(100, 200)
    needle, question = np.array([1, 2, 3]), np.array([7, 8])
    for depth in (0.0, 0.25, 0.5, 1.0):
        prompt, at = N.plant(filler, needle, question, 45, depth, offset=10)
        assert len(prompt) == 45 and at == round(depth * 40)
        assert prompt[at : at + 3].tolist() == [1, 2, 3] and prompt[-2:].tolist() == [7, 8]
        assert prompt[:at].tolist() == list(range(110, 110 + at))
    short, at = N.plant(np.arange(100, 110), needle, question, 45, 0.0, offset=3)
    assert len(short) == 45 and short[3:13].tolist() == list(range(100, 110))  # tiled filler
    with pytest.raises(ValueError, match="no room"):
        N.plant(filler, needle, question, 5, 0.5, 0)


def test_examples_have_the_length_and_equal_length_distinct_candidates(builder):
    rng = np.random.default_rng(0)
    ex = builder.example(96, 0.5, rng, n_distractors=3)
    assert len(ex.prompt) + len(ex.candidates[0]) == 96
    assert len({tuple(c) for c in ex.candidates}) == 4 and len({len(c) for c in ex.candidates}) == 1
    needle = builder.encode(N.TRAINING_TEMPLATE.needle.format(key="")).__len__()
    assert ex.prompt[ex.needle_start : ex.needle_start + needle - 2].tolist() == builder.encode("The pass key is")
    assert builder.min_length() <= 96


def test_needle_source_windows_are_deterministic_and_end_with_the_key(builder):
    src = N.NeedleSource(builder, 80, seed=3)
    ids, docs = src.window(7)
    again, _ = src.window(7)
    assert len(ids) == 80 and (docs == 0).all() and np.array_equal(ids, again)


def test_table_reports_accuracy_per_depth_and_length(builder):
    torch.manual_seed(0)
    model = Transformer(model_args("debug", 320))
    out = N.niah_table(model, builder, [64, 96], [0.0, 1.0], trials=2, n_distractors=3, seed=0)
    assert set(out["table"]) == {"0", "1"} and set(out["table"]["0"]) == {"64", "96"}
    assert out["chance"] == 0.25 and 0.0 <= out["mean"] <= 1.0


def test_the_held_out_wording_shares_no_sentence_with_training(builder):
    held = N.NiahBuilder(builder.encode, builder.filler, eot_id=-1, key_digits=4, template=N.HELD_OUT_TEMPLATE)
    ex = held.example(96, 0.0, np.random.default_rng(0), n_distractors=3)
    needle = held.encode(N.HELD_OUT_TEMPLATE.needle.format(key=""))
    assert ex.prompt[: len(needle) - 2].tolist() == needle[:-2]
    assert ex.prompt[-len(held.question):].tolist() == held.encode(N.HELD_OUT_TEMPLATE.question)
    train, test = N.TRAINING_TEMPLATE, N.HELD_OUT_TEMPLATE
    for word in ("pass", "key"):  # the training form's words are not what the held-out one asks for
        assert word not in (test.needle.format(key="") + test.question).lower()
    assert train.needle != test.needle and train.question != test.question
