"""Batched KV-cache generation against a plain no-cache greedy loop, on prompts of mixed lengths (fp32)."""

import pytest
import torch

from factory.model import generate as generate_module
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


@pytest.mark.parametrize("prefill_rows", [16, 3])
def test_mixed_lengths_in_one_batch_equal_no_cache_loop(monkeypatch, prefill_rows):
    monkeypatch.setattr(generate_module, "PREFILL_ROWS", prefill_rows)  # 3: prefill in windows of 3 rows
    model = _model()
    gen = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, 61, (n,), generator=gen).tolist() for n in (1, 9, 4, 17, 2, 12, 6, 30, 9, 9)]
    out = generate(model, prompts, 10, batch_size=len(prompts))  # one batch, left padding up to 29 slots
    assert out == [_greedy_no_cache(model, p, 10) for p in prompts]


def test_greedy_output_does_not_depend_on_batch_composition():
    model = _model()
    prompts = [[3, 1, 4, 1, 5], [9], [2, 6], [5, 3, 5, 8, 9, 7, 9], [3, 2], [3, 8, 4, 6, 2, 6, 4, 3, 3]]
    alone = [generate(model, [p], 9)[0] for p in prompts]
    for order, batch_size in [(range(6), 6), (range(5, -1, -1), 4), ((1, 3, 5, 0, 2, 4), 2)]:
        out = generate(model, [prompts[i] for i in order], 9, batch_size=batch_size)
        assert out == [alone[i] for i in order]


def test_copies_of_a_prompt_share_one_prefill_and_decode_as_if_alone(monkeypatch):
    model = _model()
    prefilled: list[int] = []
    prefill = generate_module._prefill

    def spy(model, tokens, lengths, cache):
        prefilled.append(tokens.shape[0])
        return prefill(model, tokens, lengths, cache)

    monkeypatch.setattr(generate_module, "_prefill", spy)
    prompts = [[3, 1, 4], [3, 1, 4], [2, 7], [3, 1, 4], [2, 7], [9, 9, 9, 9]]
    out = generate(model, prompts, 8, batch_size=len(prompts))
    assert prefilled == [3]  # three distinct prompts in the batch
    assert out == [_greedy_no_cache(model, p, 8) for p in prompts]
    # Sampled copies share the prompt's cache but draw their own tokens.
    sampled = generate(model, [[3, 1, 4]] * 8, 8, temperature=1.0, seed=0, batch_size=8)
    assert len({tuple(s) for s in sampled}) > 1


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


def test_rows_stopping_at_different_steps_leave_the_batch():
    model = _model()
    gen = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, 61, (n,), generator=gen).tolist() for n in (3, 8, 5, 1, 11, 4, 7, 2)]
    free = generate(model, prompts, 12, batch_size=8)
    counts: dict[int, int] = {}
    for row in free:
        for tok in set(row):
            counts[tok] = counts.get(tok, 0) + 1
    stops = set(sorted(counts, key=counts.get)[-2:])  # the two tokens most rows emit
    out = generate(model, prompts, 12, stop_tokens=stops, batch_size=8)
    assert out == [_greedy_no_cache(model, p, 12, stops=stops) for p in prompts]
    assert len({len(o) for o in out}) > 2  # rows finished at different steps (the batch was compacted)


@pytest.mark.parametrize("draws", [generate_module.NUCLEUS_DRAWS, 0])  # 0: every row takes the sort
def test_nucleus_samples_follow_the_renormalized_nucleus(monkeypatch, draws):
    monkeypatch.setattr(generate_module, "NUCLEUS_DRAWS", draws)
    probs = torch.tensor([0.05, 0.4, 0.1, 0.3, 0.15])
    logits = probs.log().expand(40_000, 5)  # one row per draw
    # top_p 0.8: the mass before 0.4, 0.3, 0.15, 0.1 is 0, 0.4, 0.7, 0.85 -> the first three
    tokens = generate_module._pick(logits, 1.0, 0.8, torch.Generator().manual_seed(0))
    freq = torch.bincount(tokens, minlength=5) / len(tokens)
    torch.testing.assert_close(freq, torch.tensor([0.0, 0.4, 0.0, 0.3, 0.15]) / 0.85, atol=0.01, rtol=0)
    whole = generate_module._pick(logits * 2, 2.0, 1.0, torch.Generator().manual_seed(0))  # temperature 2
    torch.testing.assert_close(torch.bincount(whole, minlength=5) / len(whole), probs, atol=0.01, rtol=0)


def test_draws_follow_the_weights_and_never_pick_a_zero_weight():
    gen = torch.Generator().manual_seed(3)
    weights = torch.rand(61, generator=gen)  # 61 = 7 blocks of 9 tokens (the last one padded)
    weights[::3] = 0
    tokens = generate_module._draw(weights.expand(60_000, 61), gen)
    freq = torch.bincount(tokens, minlength=61) / len(tokens)
    assert len(freq) == 61 and freq[::3].sum() == 0
    torch.testing.assert_close(freq, weights / weights.sum(), atol=0.005, rtol=0)


def test_stops_at_context_length_and_rejects_bad_prompts():
    model = _model()
    prompt = list(range(1, 60))
    assert len(generate(model, [prompt], 50)[0]) == 64 - 59
    # In one batch with a short prompt, each row keeps its own context limit.
    near, short = list(range(1, 61)), [5, 6]
    out = generate(model, [near, short], 8, batch_size=2)
    assert out == [_greedy_no_cache(model, near, 4), _greedy_no_cache(model, short, 8)]
    assert generate(model, [short], 0) == [[]]
    for bad in ([], list(range(64))):
        with pytest.raises(ValueError):
            generate(model, [bad], 3)
    for kwargs in ({"temperature": -1.0}, {"top_p": 0.0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            generate(model, [short], 3, **kwargs)


@pytest.mark.slow  # ~6 s: dynamo traces the step for each batch size
def test_compiled_decode_step_gives_the_same_tokens(monkeypatch):
    # Dynamo's graph capture of the step (cache writes, dynamic batch and length) with its eager
    # backend: inductor's C++ build of the same graph takes over a minute on this host.
    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, backend="eager", **kw))
    model = _model()
    prompts = [[1, 5, 9], [2, 3], [7, 8, 9, 10, 11], [4], [6, 6, 6, 1], [9, 2]]
    eager = generate(model, prompts, 8, stop_tokens={56}, batch_size=6)
    assert len({len(x) for x in eager}) > 2  # the batch shrinks: the graph sees several batch sizes
    assert generate(model, prompts, 8, stop_tokens={56}, batch_size=6, compile=True) == eager
