"""Token shards: documents tokenized into per-domain streams (recipe: "Pre-Training Data", "Determining
the data mix").

A stream is the concatenation of a domain's documents, each followed by ``<|end_of_text|>``, so a
packed training window (``factory.train.data.PackedTokens``) can find document boundaries. Streams
are saved as ``uint32`` ``.npy`` shards under ``tokens/<stream>/<split>-NNNNN.npy`` inside the
``data_mix`` artifact; every pre-training stage reads them back with ``load_stream``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from factory.train.data import PackedTokens

TOKENS_DIR = "tokens"
SPLITS = ("train", "validation")
# The stream of the top documents by quality score, beside the domain streams: the annealing data.
HIGH_QUALITY = "high_quality"


def encode_documents(tokenizer, texts: Sequence[str], eot_id: int, batch_size: int = 256) -> np.ndarray:
    """Tokenize documents into one stream: doc_1 <eot> doc_2 <eot> ... (uint32)."""
    parts: list[np.ndarray] = []
    for i in range(0, len(texts), batch_size):
        for enc in tokenizer.encode_batch(list(texts[i : i + batch_size]), add_special_tokens=False):
            parts.append(np.asarray(enc.ids, dtype=np.uint32))
            parts.append(np.asarray([eot_id], dtype=np.uint32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)


def save_stream(tokens: np.ndarray, root: Path, stream: str, split: str, shard_tokens: int) -> list[Path]:
    """Write a stream as ``root/tokens/<stream>/<split>-NNNNN.npy`` shards of at most ``shard_tokens``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if shard_tokens < 1:
        raise ValueError(f"shard_tokens must be >= 1, got {shard_tokens}")
    folder = root / TOKENS_DIR / stream
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, start in enumerate(range(0, len(tokens), shard_tokens)):
        path = folder / f"{split}-{k:05d}.npy"
        np.save(path, tokens[start : start + shard_tokens].astype(np.uint32))
        paths.append(path)
    return paths


def stream_names(root: Path) -> list[str]:
    folder = root / TOKENS_DIR
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.exists() else []


def load_stream(root: Path, stream: str, split: str) -> np.ndarray:
    """Concatenate the shards of one stream and split (empty array when the stream has none)."""
    shards = sorted((root / TOKENS_DIR / stream).glob(f"{split}-*.npy"))
    if not shards:
        return np.zeros(0, dtype=np.uint32)
    return np.concatenate([np.load(p) for p in shards])


def packed_sources(
    streams: Mapping[str, np.ndarray], seq_len: int, eot_id: int, seed: int
) -> dict[str, PackedTokens]:
    """One ``PackedTokens`` per stream long enough for a window; each stream gets its own seed."""
    return {
        name: PackedTokens(tokens, seq_len, eot_id, seed=seed + i)
        for i, (name, tokens) in enumerate(sorted(streams.items()))
        if len(tokens) >= seq_len + 1
    }


MIX_FILE = "mix.json"


def read_mix(folder: Path) -> dict:
    """The ``mix.json`` of a ``data_mix`` artifact: ``weights`` (stream -> share) and the experiments."""
    path = Path(folder) / MIX_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {MIX_FILE} in {folder}")
    return json.loads(path.read_text())
