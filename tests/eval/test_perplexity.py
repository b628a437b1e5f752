"""Perplexity: a uniform model scores exactly the vocabulary size; document boundaries are not predicted."""

import math

import numpy as np
import pytest
import torch

from factory.eval.perplexity import mean_nll, perplexity, stream_losses
from factory.model.flavors import model_args
from factory.model.llama import Transformer

VOCAB = 50


def uniform_model() -> Transformer:
    model = Transformer(model_args("debug", VOCAB))
    with torch.no_grad():
        model.output.weight.zero_()  # logits 0 everywhere: p = 1 / VOCAB
    return model


def test_uniform_model_has_perplexity_equal_to_the_vocabulary():
    tokens = np.random.default_rng(0).integers(0, VOCAB, 400)
    assert perplexity(uniform_model(), tokens, 16) == pytest.approx(VOCAB, rel=1e-5)
    assert mean_nll(uniform_model(), tokens, 16, eot_id=1, max_windows=3) == pytest.approx(math.log(VOCAB), rel=1e-5)


def test_training_lowers_perplexity_on_a_repetitive_stream():
    tokens = np.tile(np.arange(2, 12), 40)
    model = Transformer(model_args("debug", VOCAB))
    before = mean_nll(model, tokens, 20)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.from_numpy(tokens[:200].reshape(10, 20).astype(np.int64))
    for _ in range(20):
        logits = model(ids)
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad()
    assert mean_nll(model, tokens, 20) < before - 1.0


def test_streams_shorter_than_a_window_are_left_out_or_raise():
    model = uniform_model()
    losses = stream_losses(model, {"long": np.arange(40) % VOCAB, "short": np.arange(5)}, 16)
    assert set(losses) == {"long"}
    with pytest.raises(ValueError, match="shorter than one window"):
        mean_nll(model, np.arange(5), 16)
