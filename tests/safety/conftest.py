"""Tiny real artifacts for the safety tests: a BPE tokenizer trained on the seed set's texts and a
``debug``-flavor LM checkpoint saved with ``checkpoint_io`` (untrained: the guard test measures
what fine-tuning alone learns)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from factory.data.tokenizer import save_tokenizer, train_bpe
from factory.model import checkpoint_io
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.safety.guard import guard_prompt_parts
from factory.safety.seed_prompts import guard_examples


def build_tokenizer(out: Path) -> Path:
    # Most words of the Llama Guard seed set become single tokens: short prompts keep the guard test
    # fast. (Prompt Guard reads with MiniLM's own tokenizer: its texts stay out, so its seed pools can
    # grow without moving this vocabulary and the Llama Guard measurements on it.)
    texts = [e.text for e in guard_examples(48, 24)]
    texts += list(guard_prompt_parts("x", None)) + list(guard_prompt_parts("x", "y"))
    texts += ["def f(x):\n    return x + 1\n", "import os\nprint(os.getcwd())\n"]
    save_tokenizer(train_bpe(texts, 4096, num_special_tokens=256, min_frequency=1), out)
    return out


def build_lm(out: Path, vocab_size: int, max_seq_len: int = 384, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    checkpoint_io.save_model(Transformer(model_args("debug", vocab_size, max_seq_len=max_seq_len)), out)
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory, tokenizer_dir) -> Path:
    from factory.model.tokenizer_files import load_tokenizer

    return build_lm(tmp_path_factory.mktemp("lm"), load_tokenizer(tokenizer_dir).get_vocab_size())
