"""Tokenizer stage: Llama 3 special tokens after the BPE vocabulary, digit splitting, artifact files."""

import json

import jinja2
import pandas as pd
import pytest

from factory.core.stage import StageContext
from factory.data import tokenizer as T
from factory.model import tokenizer_files as F

TEXTS = (["The quick brown fox jumps over 12345 lazy dogs.\n\nIt's 2026!"] * 5
         + ["def add(a, b):\n    return a + b\n"] * 5 + ["Hallo Welt, wie geht's? 1999"] * 3)


def test_special_tokens_follow_the_bpe_vocabulary_in_llama3_order():
    tok = T.train_bpe(TEXTS, 300, num_special_tokens=16)
    assert tok.get_vocab_size() == 300
    assert tok.token_to_id(F.BEGIN_OF_TEXT) == 284
    assert tok.token_to_id(F.END_OF_TEXT) == 285
    assert tok.token_to_id(F.FINETUNE_RIGHT_PAD) == 288
    assert tok.token_to_id(F.START_HEADER) == 290
    assert tok.token_to_id(F.END_HEADER) == 291
    assert tok.token_to_id(F.EOM) == 292
    assert tok.token_to_id(F.EOT) == 293
    assert tok.token_to_id(F.PYTHON_TAG) == 294
    assert tok.token_to_id(F.reserved_token(6)) == 299
    # A special token inside text is one token; BPE never splits it.
    assert tok.encode(f"a{F.EOT}b").ids[1] == 293


def test_digits_split_individually_or_in_groups_of_three():
    one = T.train_bpe(TEXTS, 300, num_special_tokens=16, digit_group=1)
    assert one.encode("x 12345").tokens[-5:] == ["1", "2", "3", "4", "5"]
    three = T.train_bpe(TEXTS * 4 + ["123 45"] * 20, 320, num_special_tokens=16, digit_group=3)
    assert list(three.encode("12345").tokens) == ["123", "45"]
    with pytest.raises(ValueError):
        T.split_pattern(0)


def test_too_few_special_tokens_or_too_small_vocab_raise():
    with pytest.raises(ValueError, match="num_special_tokens"):
        T.special_token_names(4)
    with pytest.raises(ValueError, match="256 bytes"):
        T.train_bpe(TEXTS, 260, num_special_tokens=16)


def test_run_tokenizer_writes_artifact_and_chars_per_token(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    texts = [f"Document {i} talks about topic {i % 7} in some words. " * 3 for i in range(40)]
    langs = ["en"] * 30 + ["de"] * 10
    pd.DataFrame({"text": texts, "language": langs}).to_parquet(corpus / "docs.parquet")
    cfg = T.TokenizerConfig(vocab_size=400, num_special_tokens=32, train_docs=30, heldout_docs=10)
    meta = T.run_tokenizer(cfg, {"filtered_corpus": corpus}, tmp_path / "out", StageContext())
    out = tmp_path / "out"
    specials = json.loads((out / F.SPECIAL_TOKENS_FILE).read_text())
    # A corpus this small yields fewer merges than asked: the specials follow the real vocabulary.
    assert len(specials) == 32 and specials[F.BEGIN_OF_TEXT] == meta["bpe_vocab_size"]
    assert (meta["vocab_size"] == meta["bpe_vocab_size"] + 32 <= 400
            and meta["heldout_docs"] == 10 and meta["train_docs"] == 30)
    assert meta["chars_per_token"] > 1.5
    assert set(meta["chars_per_token_by_language"]) <= {"en", "de"}
    template = jinja2.Environment().from_string((out / F.CHAT_TEMPLATE_FILE).read_text())
    text = template.render(messages=[{"role": "user", "content": " hi "}], add_generation_prompt=True)
    assert text == ("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
                    "<|start_header_id|>assistant<|end_header_id|>\n\n")
