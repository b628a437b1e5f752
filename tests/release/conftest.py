"""A tiny tokenizer artifact made by the tokenizer stage's own functions (tokenizer.json,
special_tokens.json, chat_template.jinja)."""

import pytest

from factory.data.tokenizer import save_tokenizer, train_bpe


@pytest.fixture
def tokenizer_dir(tmp_path):
    tok = train_bpe(["hello world, what is two plus two?", "the answer is four."] * 20, vocab_size=300,
                    num_special_tokens=16)
    save_tokenizer(tok, tmp_path / "tokenizer")
    return tmp_path / "tokenizer"
