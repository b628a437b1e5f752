"""Tiny models and data shared by the trainer tests."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import pytest

from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.train.data import PackedTokens

VOCAB = 64
EOT = 1


def tiny_lm(flavor: str = "debug", vocab: int = VOCAB) -> Callable[[], Transformer]:
    """A model builder that Ray workers can unpickle (only factory code, no test module, inside)."""
    return functools.partial(Transformer, model_args(flavor, vocab, max_seq_len=64))


def token_stream(n: int = 4000, seed: int = 0) -> np.ndarray:
    """A learnable stream: documents of a repeating pattern separated by EOT."""
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        start = int(rng.integers(2, VOCAB))
        out += [2 + (start + i) % (VOCAB - 2) for i in range(int(rng.integers(5, 30)))] + [EOT]
    return np.array(out[:n], dtype=np.int64)


@pytest.fixture
def packed() -> PackedTokens:
    return PackedTokens(token_stream(), seq_len=16, eot_id=EOT, seed=0)


@pytest.fixture
def build_lm() -> Callable[[], Transformer]:
    return tiny_lm()
