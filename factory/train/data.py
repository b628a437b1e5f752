"""Batch sources for the trainer: every batch is a pure function of its sample position.

A source answers ``batch(offset, batch_size)`` with the samples ``offset .. offset+batch_size-1``
of an endless, seeded sample order. The trainer's data position is therefore one integer (samples
consumed), saved in every checkpoint, and a resumed run reads exactly the samples an
uninterrupted run would have read.

- ``PackedTokens``: windows of ``seq_len + 1`` tokens cut from a token stream in which documents
  are separated by an end-of-text token; ``doc_ids`` mark document boundaries inside a window so
  attention does not cross them (recipe: packed pre-training sequences).
- ``MixedTokens``: a weighted mixture of named ``PackedTokens`` (the data mix, expert mixes,
  annealing upsampling); each sample's domain is drawn from a generator seeded by its position.
- ``Examples``: a list of variable-length examples (SFT dialogs, preference pairs, classifier
  inputs) reshuffled each epoch and padded per batch.

``score_sequences`` batches the same way for inference: the reward model's and the guards' scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from factory.train.losses import IGNORE


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, index])


class PackedTokens:
    """Random windows over one token stream. tokens: 1-D int array, or a memory-mapped
    ``token_shards.TokenStream`` (only ``len`` and step-1 slices are used); eot_id separates documents."""

    def __init__(self, tokens: np.ndarray, seq_len: int, eot_id: int, seed: int = 0):
        if tokens.ndim != 1:
            raise ValueError("tokens must be a 1-D array")
        if len(tokens) < seq_len + 1:
            raise ValueError(f"token stream of {len(tokens)} tokens is shorter than one window of {seq_len + 1}")
        self.tokens = tokens
        self.seq_len = seq_len
        self.eot_id = eot_id
        self.seed = seed

    def window(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        start = int(_rng(self.seed, index).integers(0, len(self.tokens) - self.seq_len))
        ids = self.tokens[start : start + self.seq_len].astype(np.int64)
        # A document ends at its eot token; the next document starts right after it.
        doc = np.concatenate([[0], np.cumsum(ids[:-1] == self.eot_id)])
        return ids, doc

    def batch(self, offset: int, batch_size: int) -> dict[str, torch.Tensor]:
        ids, docs = zip(*(self.window(offset + i) for i in range(batch_size)), strict=False)
        input_ids = torch.from_numpy(np.stack(ids))
        return {"input_ids": input_ids, "labels": input_ids.clone(), "doc_ids": torch.from_numpy(np.stack(docs))}


class MixedTokens:
    """Weighted mixture of named token sources; weights need not sum to one."""

    def __init__(self, sources: Mapping[str, PackedTokens], weights: Mapping[str, float], seed: int = 0):
        names = [n for n in sources if weights.get(n, 0.0) > 0]
        if not names:
            raise ValueError("data mix has no source with positive weight")
        self.sources = {n: sources[n] for n in names}
        w = np.array([weights[n] for n in names], dtype=np.float64)
        self.names, self.probs, self.seed = names, w / w.sum(), seed

    def batch(self, offset: int, batch_size: int) -> dict[str, torch.Tensor]:
        ids, docs = [], []
        for i in range(offset, offset + batch_size):
            name = self.names[int(_rng(self.seed, i).choice(len(self.names), p=self.probs))]
            a, d = self.sources[name].window(i)
            ids.append(a)
            docs.append(d)
        input_ids = torch.from_numpy(np.stack(ids))
        return {"input_ids": input_ids, "labels": input_ids.clone(), "doc_ids": torch.from_numpy(np.stack(docs))}


def pad_collate(examples: Sequence[Mapping[str, object]], pad_id: int) -> dict[str, torch.Tensor]:
    """Stack examples into a batch, right-padding the variable-length fields.

    ``*_ids`` fields pad with ``pad_id``; integer ``*labels`` fields pad with -100 (no loss);
    scalars and fixed-size float vectors (multi-label targets) are stacked.
    """
    out: dict[str, torch.Tensor] = {}
    for key in examples[0]:
        values = [torch.as_tensor(e[key]) for e in examples]
        if values[0].dim() == 1 and key.endswith("_ids"):
            out[key] = _pad(values, pad_id)
        elif values[0].dim() == 1 and key.endswith("labels") and not values[0].is_floating_point():
            out[key] = _pad(values, IGNORE)
        else:
            out[key] = torch.stack(values)
    return out


def _pad(values: list[torch.Tensor], fill: int) -> torch.Tensor:
    length = max(v.shape[0] for v in values)
    out = torch.full((len(values), length), fill, dtype=values[0].dtype)
    for i, v in enumerate(values):
        out[i, : v.shape[0]] = v
    return out


@torch.no_grad()
def score_sequences(model: torch.nn.Module, sequences: Sequence[Sequence[int]], pad_id: int,
                    batch_size: int = 32) -> torch.Tensor:
    """``model(tokens, lengths)`` of a sequence scorer or classifier over token-id sequences,
    right-padded in batches of ``batch_size`` (as ``pad_collate`` pads training batches): the
    outputs, float32, one row per sequence ([N, ...]; an empty ``[0]`` tensor for no sequences).
    The model's train/eval mode is the caller's."""
    out = []
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start : start + batch_size]
        batch = pad_collate([{"input_ids": s, "lengths": len(s)} for s in chunk], pad_id)
        out.append(model(batch["input_ids"], batch["lengths"]).float())
    return torch.cat(out) if out else torch.zeros(0)


class Examples:
    """Variable-length examples, reshuffled each epoch by a seeded permutation, padded per batch."""

    def __init__(self, examples: Sequence[Mapping[str, object]], pad_id: int, seed: int = 0):
        if not examples:
            raise ValueError("no training examples")
        self.examples, self.pad_id, self.seed = list(examples), pad_id, seed

    def index(self, i: int) -> int:
        n = len(self.examples)
        epoch, pos = divmod(i, n)
        return int(_rng(self.seed, epoch).permutation(n)[pos])

    def batch(self, offset: int, batch_size: int) -> dict[str, torch.Tensor]:
        return pad_collate([self.examples[self.index(offset + i)] for i in range(batch_size)], self.pad_id)
