"""Token shards: documents tokenized into per-domain streams (recipe: "Pre-Training Data", "Determining
the data mix").

A stream is the concatenation of a domain's documents, each followed by ``<|end_of_text|>``, so a
packed training window (``factory.train.data.PackedTokens``) can find document boundaries. Streams
are saved as ``uint32`` ``.npy`` shards under ``tokens/<stream>/<split>-NNNNN.npy`` inside the
``data_mix`` artifact; every pre-training stage reads them back with ``load_stream``.

Reading never loads a stream: ``load_stream`` memory-maps each shard (``np.load(mmap_mode="r")``)
and returns a ``TokenStream``, the shards' concatenation as a read-only view. A training window
only pages in its ``seq_len + 1`` tokens, so a run holds no more of the shard set in RAM than the
page cache keeps. The few consumers that need a whole stream as one array (NIAH filler, the cloze
proxy task) ask for it with ``np.asarray(stream)``.
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


class TokenStream:
    """Read-only concatenation of memory-mapped token shards, indexed like a 1-D array.

    Supports ``len``, integer indexing and step-1 slices (a slice spanning shards is copied into
    one array; within a shard it is a view of the map); ``np.asarray`` loads the whole stream.
    Anything else (masks, comparisons) is refused rather than silently misread: load it first."""

    ndim = 1

    def __init__(self, shards: Sequence[np.ndarray]):
        self.shards = [s for s in shards if len(s)]
        self.dtype = self.shards[0].dtype if self.shards else np.dtype(np.uint32)
        # starts[k] is the stream position of shard k's first token; starts[-1] is the length.
        self.starts = np.concatenate([[0], np.cumsum([len(s) for s in self.shards], dtype=np.int64)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __getitem__(self, key):
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, (int, np.integer, slice)):
            raise TypeError(f"TokenStream takes an int or a step-1 slice, not {type(key).__name__}; "
                            "use np.asarray(stream) for array operations")
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise TypeError("TokenStream slices must have step 1")
            return self._range(start, max(start, stop))
        index = int(key) + len(self) if key < 0 else int(key)
        if not 0 <= index < len(self):
            raise IndexError(f"index {key} out of range for a stream of {len(self)} tokens")
        k = int(np.searchsorted(self.starts, index, side="right")) - 1
        return self.shards[k][index - self.starts[k]]

    def _range(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        parts = []
        k = first
        while k < len(self.shards) and self.starts[k] < stop:
            lo, hi = self.starts[k], self.starts[k + 1]
            parts.append(self.shards[k][max(start, lo) - lo : min(stop, hi) - lo])
            k += 1
        if not parts:
            return np.zeros(0, dtype=self.dtype)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = np.concatenate(self.shards) if self.shards else np.zeros(0, dtype=self.dtype)
        return whole if dtype is None else whole.astype(dtype)


def load_stream(root: Path, stream: str, split: str) -> TokenStream:
    """The memory-mapped shards of one stream and split, in order (empty when it has none)."""
    shards = sorted((root / TOKENS_DIR / stream).glob(f"{split}-*.npy"))
    return TokenStream([np.load(p, mmap_mode="r") for p in shards])


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
