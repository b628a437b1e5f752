"""Batched KV-cache generation against a plain no-cache greedy loop."""

import pytest
import torch

from factory.model.flavors import model_args
from factory.model.generate import generate
from factory.model.llama import Transformer


def _model(seed: int = 0) -> Transformer:
    torch.manual_seed(seed)
    model = Transformer(model_args("debug", vocab_size=61, max_seq_len=64)).eval()
    # Larger weights than the init make the greedy path depend on the context, not one token.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(8.0) if p.dim() == 2 else None
    return model


def _greedy_no_cache(model, prompt, n, stops=()):
    seq = list(prompt)
    new = []
    with torch.no_grad():
        for _ in range(n):
            tok = int(model(torch.tensor([seq]))[0, -1].argmax())
            if tok in stops:
                break
            new.append(tok)
            seq.append(tok)
    return new


def test_greedy_batched_equals_no_cache_loop():
    model = _model()
    prompts = [[1, 5, 9], [2, 3], [1, 5, 9], [7, 8, 9], [4], [10, 11, 12, 13, 14]]
    out = generate(model, prompts, 12, batch_size=2)
    for prompt, new in zip(prompts, out, strict=True):
        assert new == _greedy_no_cache(model, prompt, 12)
        assert len(new) == 12


def test_stop_token_excluded_and_rows_finish_independently():
    model = _model()
    prompts = [[1, 5, 9], [7, 8, 9], [3, 3, 3]]
    free = generate(model, prompts, 10)
    stop = free[0][3]  # a token the first row emits at step 4
    out = generate(model, prompts, 10, stop_tokens={stop})
    for prompt, new in zip(prompts, out, strict=True):
        assert new == _greedy_no_cache(model, prompt, 10, stops={stop})
    assert out[0] == free[0][: free[0].index(stop)]


def test_sampling_is_seeded_and_top_p_tiny_is_greedy():
    model = _model()
    prompts = [[1, 2, 3]] * 6  # K samples of one prompt
    a = generate(model, prompts, 8, temperature=1.0, seed=3)
    b = generate(model, prompts, 8, temperature=1.0, seed=3)
    assert a == b
    assert len({tuple(x) for x in a}) > 1  # samples differ from each other
    nucleus = generate(model, prompts, 8, temperature=1.0, top_p=1e-6, seed=5)
    greedy = generate(model, [[1, 2, 3]], 8)[0]
    assert all(x == greedy for x in nucleus)


def test_stops_at_context_length_and_rejects_bad_prompts():
    model = _model()
    prompt = list(range(1, 60))
    assert len(generate(model, [prompt], 50)[0]) == 64 - 59
    for bad in ([], list(range(64))):
        with pytest.raises(ValueError):
            generate(model, [bad], 3)
