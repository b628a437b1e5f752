"""Token shards are memory-mapped on read and give the same batches as the in-memory stream."""

from __future__ import annotations

import numpy as np
import pytest

from factory.train.data import MixedTokens, PackedTokens
from factory.train.token_shards import TokenStream, load_stream, save_stream

EOT = 1


def _stream(n: int = 2500) -> np.ndarray:
    rng = np.random.default_rng(3)
    tokens = rng.integers(2, 500, size=n).astype(np.uint32)
    tokens[rng.choice(n, size=n // 20, replace=False)] = EOT
    return tokens


def test_load_stream_memory_maps_every_shard(tmp_path):
    tokens = _stream()
    paths = save_stream(tokens, tmp_path, "code", "train", shard_tokens=700)
    assert [p.name for p in paths] == ["train-00000.npy", "train-00001.npy", "train-00002.npy", "train-00003.npy"]
    stream = load_stream(tmp_path, "code", "train")
    assert len(stream.shards) == 4 and all(isinstance(s, np.memmap) for s in stream.shards)
    assert len(stream) == 2500 and stream.dtype == np.uint32 and stream.shape == (2500,)
    # A slice inside one shard stays a view of the map; one across shards is assembled.
    assert isinstance(stream[710:720], np.memmap)
    np.testing.assert_array_equal(np.asarray(stream), tokens)
    for a, b in [(0, 2500), (690, 710), (699, 1401), (1400, 1400), (2490, 3000), (-5, None)]:
        np.testing.assert_array_equal(stream[a:b], tokens[a:b])
    assert stream[-1] == tokens[-1] and stream[700] == tokens[700]
    assert len(load_stream(tmp_path, "code", "validation")) == 0


def test_token_stream_refuses_array_operations():
    stream = TokenStream([np.arange(10, dtype=np.uint32)])
    with pytest.raises(TypeError):
        stream[stream != 3]
    with pytest.raises(TypeError):
        stream[True]
    with pytest.raises(TypeError):
        stream[::2]
    with pytest.raises(IndexError):
        stream[10]


def test_batches_from_mapped_shards_equal_the_in_memory_stream(tmp_path):
    tokens = _stream()
    save_stream(tokens, tmp_path, "general", "train", shard_tokens=300)
    save_stream(tokens[::-1].copy(), tmp_path, "code", "train", shard_tokens=450)
    mapped = {n: load_stream(tmp_path, n, "train") for n in ("general", "code")}
    loaded = {"general": tokens, "code": tokens[::-1].copy()}
    for seed in (0, 7):
        a = PackedTokens(mapped["general"], 64, EOT, seed=seed).batch(5, 16)
        b = PackedTokens(loaded["general"], 64, EOT, seed=seed).batch(5, 16)
        assert all(bool((a[k] == b[k]).all()) for k in b)
        weights = {"general": 0.7, "code": 0.3}
        mix_a = MixedTokens({n: PackedTokens(s, 64, EOT, seed=seed) for n, s in mapped.items()}, weights, seed=seed)
        mix_b = MixedTokens({n: PackedTokens(s, 64, EOT, seed=seed) for n, s in loaded.items()}, weights, seed=seed)
        a, b = mix_a.batch(100, 32), mix_b.batch(100, 32)
        assert all(bool((a[k] == b[k]).all()) for k in b)
        assert a["input_ids"].dtype == b["input_ids"].dtype
