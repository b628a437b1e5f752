"""Held-out negative log-likelihood and perplexity of a language model on a token stream (recipe:
"Scaling Laws" — validation NLL of every grid run; "Pre-Training Recipe" — short-context recovery).

The stream is cut into consecutive, non-overlapping windows of ``seq_len`` tokens; every position
but the last of a window predicts the next token, as in training. When ``eot_id`` is given, the
model sees document ids so attention never crosses a document boundary (the same masking as the
packed training batches), and no prediction is made across a boundary either: the token after an
``<|end_of_text|>`` is the first token of an unrelated document.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from factory.train.losses import IGNORE, shift_labels, token_logprobs


def _windows(tokens: np.ndarray, seq_len: int, max_windows: int | None) -> np.ndarray:
    n = len(tokens) // seq_len
    if n == 0:
        raise ValueError(f"stream of {len(tokens)} tokens is shorter than one window of {seq_len}")
    starts = np.arange(n) * seq_len
    if max_windows is not None and n > max_windows:
        # Evenly spaced windows cover the whole stream, not just its beginning.
        starts = starts[np.linspace(0, n - 1, max_windows).astype(int)]
    return np.stack([tokens[s : s + seq_len] for s in starts]).astype(np.int64)


@torch.no_grad()
def mean_nll(
    model: nn.Module,
    tokens: np.ndarray,
    seq_len: int,
    *,
    eot_id: int | None = None,
    max_windows: int | None = None,
    batch_size: int = 16,
) -> float:
    """Mean next-token NLL (nats per token) of ``model`` over the stream."""
    windows = torch.from_numpy(_windows(tokens, seq_len, max_windows))
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        ids = windows[i : i + batch_size]  # [B, T]
        labels = ids.clone()
        doc_ids = None
        if eot_id is not None:
            ends = (ids == eot_id).long()
            doc_ids = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1].cumsum(1)], dim=1)
            # The token right after an <eot> starts a new document: nothing predicts it.
            labels[:, 1:] = labels[:, 1:].masked_fill(ends[:, :-1].bool(), IGNORE)
        targets = shift_labels(ids, labels)
        logp = token_logprobs(model(ids, doc_ids=doc_ids), targets)
        total -= float(logp.sum())
        count += int((targets != IGNORE).sum())
    model.train(was_training)
    return total / max(count, 1)


def perplexity(model: nn.Module, tokens: np.ndarray, seq_len: int, **kwargs) -> float:
    """exp(mean NLL): the model's perplexity on the stream (keyword arguments as ``mean_nll``)."""
    return math.exp(mean_nll(model, tokens, seq_len, **kwargs))


def stream_losses(
    model: nn.Module,
    streams: Mapping[str, np.ndarray],
    seq_len: int,
    *,
    eot_id: int | None = None,
    max_windows: int | None = None,
) -> dict[str, float]:
    """Mean NLL per named stream (streams shorter than one window are left out)."""
    return {
        name: mean_nll(model, tokens, seq_len, eot_id=eot_id, max_windows=max_windows)
        for name, tokens in streams.items()
        if len(tokens) >= seq_len
    }


def val_losses(model, val_streams: Mapping[str, np.ndarray], seq_len: int, eot_id: int,
               max_windows: int) -> dict[str, float]:
    """Per-stream validation NLL plus their ``mean`` (the mix experiments' and gates' score)."""
    losses = stream_losses(model, val_streams, seq_len, eot_id=eot_id, max_windows=max_windows)
    if not losses:
        raise ValueError(f"no validation stream holds a window of {seq_len} tokens")
    return {**{k: round(v, 5) for k, v in losses.items()}, "mean": round(float(np.mean(list(losses.values()))), 5)}
