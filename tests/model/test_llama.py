"""Architecture invariants of the Llama decoder: GQA shapes, document masking, KV cache, size."""

import pytest
import torch

from factory.model.flavors import model_args
from factory.model.llama import KVCache, SequenceScorer, Transformer, repeat_kv


def _model() -> Transformer:
    torch.manual_seed(0)
    return Transformer(model_args("debug", vocab_size=50)).eval()


def test_gqa_projection_and_cache_shapes():
    model = _model()
    a = model.args  # debug: dim 32, 4 query heads, 2 kv heads -> head_dim 8
    attn = model.layers[0].attention
    assert attn.wq.weight.shape == (a.n_heads * a.head_dim, a.dim)
    assert attn.wk.weight.shape == attn.wv.weight.shape == (a.n_kv_heads * a.head_dim, a.dim)
    cache = KVCache.allocate(a, 3, 10)
    logits = model(torch.randint(0, 50, (3, 7)), cache=cache)
    assert logits.shape == (3, 7, 50)
    assert cache.keys[1].shape == (3, a.n_kv_heads, 10, a.head_dim) and cache.length == 7
    kv = torch.randn(3, 2, 5, 8)
    rep = repeat_kv(kv, 2)
    assert rep.shape == (3, 4, 5, 8) and torch.equal(rep[:, 1], kv[:, 0]) and torch.equal(rep[:, 2], kv[:, 1])


def test_document_masking_equals_separate_documents():
    model = _model()
    a, b = torch.randint(0, 50, (1, 5)), torch.randint(0, 50, (1, 4))
    packed = torch.cat([a, b], dim=1)
    doc_ids = torch.tensor([[0] * 5 + [1] * 4])
    with torch.no_grad():
        together = model(packed, doc_ids=doc_ids)
        torch.testing.assert_close(together[:, :5], model(a), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(together[:, 5:], model(b), atol=1e-5, rtol=1e-5)


def test_kv_cache_decode_equals_full_forward():
    model = _model()
    tokens = torch.randint(0, 50, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = KVCache.allocate(model.args, 2, 9)
        parts = [model(tokens[:, :4], cache=cache), model(tokens[:, 4:6], cache=cache)]
        parts += [model(tokens[:, i : i + 1], cache=cache) for i in range(6, 9)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="9 slots"):
        model(tokens[:, :1], cache=cache)


def test_left_padded_cache_rows_equal_their_unpadded_runs():
    model = _model()
    short, long = torch.randint(1, 50, (1, 3)), torch.randint(1, 50, (1, 6))
    padded = torch.cat([torch.cat([torch.zeros(1, 3, dtype=torch.long), short], dim=1), long])  # [2, 6]
    with torch.no_grad():
        cache = KVCache.allocate(model.args, 2, 8, start=torch.tensor([3, 0]))
        prefill = model(padded, cache=cache)
        assert cache.positions(1).tolist() == [[3], [6]]  # each row's true position, not its slot
        step = model(torch.tensor([[7], [7]]), cache=cache)[:, 0]  # [2, vocab]
        # Each row equals its own unpadded run, at positions 0.. of its real tokens.
        torch.testing.assert_close(prefill[0, 3:], model(short)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(prefill[1], model(long)[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step[0], model(torch.cat([short, torch.tensor([[7]])], 1))[0, -1],
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(step[1], model(torch.cat([long, torch.tensor([[7]])], 1))[0, -1],
                                   atol=1e-5, rtol=1e-5)
    assert torch.isfinite(prefill).all()  # pad queries attend to themselves: no NaN anywhere


def test_param_count_and_flops_per_token():
    model = _model()
    d, layers, h, kv, ffn, v = 32, 2, 4, 2, 64, 50
    hd = d // h
    per_layer = d * h * hd + 2 * d * kv * hd + h * hd * d + 3 * d * ffn + 2 * d
    expected = v * d + layers * per_layer + d + d * v
    assert model.num_params() == expected == 21_792
    assert model.num_params(exclude_embeddings=True) == expected - v * d
    assert model.flops_per_token(128) == 6 * (expected - v * d) + 12 * layers * d * 128


def test_scorer_reads_last_real_token():
    torch.manual_seed(0)
    scorer = SequenceScorer(model_args("debug", vocab_size=50), n_outputs=3).eval()
    tokens = torch.randint(0, 50, (2, 6))
    padded = tokens.clone()
    padded[0, 4:] = 0  # row 0 really has 4 tokens; padding after it must not matter
    with torch.no_grad():
        out = scorer(padded, torch.tensor([4, 6]))
        torch.testing.assert_close(out[0], scorer(tokens[:1, :4], torch.tensor([4]))[0], atol=1e-5, rtol=1e-5)
    assert out.shape == (2, 3)

