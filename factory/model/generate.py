"""Batched autoregressive generation with the KV cache (recipe: "Post-training Data", rejection
sampling; "Inference").

``generate`` serves rejection sampling (K samples of one prompt), preference data and evaluation.
Prompts of equal length are bucketed and decoded together, so no padding is needed and every row
sees exactly the positions a single-prompt run would see: greedy output equals a no-cache loop.
Rows that emit a stop token (or reach the context length) leave the batch and their cache rows
are dropped, so finished rows cost nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection

import torch

from factory.model.llama import KVCache, Transformer


def generate(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_p: float = 1.0,
    stop_tokens: Collection[int] = frozenset(),
    seed: int | None = None,
    batch_size: int = 16,
) -> list[list[int]]:
    """New tokens of each prompt, in prompt order; a stop token ends a row and is not returned.

    ``temperature == 0`` is greedy decoding; otherwise tokens are sampled from the softmax at that
    temperature restricted to the smallest nucleus of probability mass ``top_p``. ``seed`` makes
    sampling reproducible. Generation also stops at the model's ``max_seq_len``.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    max_len = model.args.max_seq_len
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"prompt {i} is empty; start it with at least the BOS token")
        if len(p) >= max_len:
            raise ValueError(f"prompt {i} has {len(p)} tokens; the model's context is {max_len}")

    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    if seed is None:
        generator.seed()  # a fresh Generator's default seed is a constant: draw a random one
    else:
        generator.manual_seed(seed)
    stops = torch.tensor(sorted(stop_tokens), dtype=torch.long, device=device)

    by_length: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    results: list[list[int]] = [[] for _ in prompts]
    with torch.no_grad():
        for length, indices in sorted(by_length.items()):
            budget = min(max_new_tokens, max_len - length)
            for start in range(0, len(indices), batch_size):
                chunk = indices[start : start + batch_size]
                tokens = torch.tensor([prompts[i] for i in chunk], dtype=torch.long, device=device)
                for row, new in zip(chunk, _decode(model, tokens, budget, temperature, top_p, stops, generator),
                                    strict=True):
                    results[row] = new
    return results


def _decode(
    model: Transformer,
    tokens: torch.Tensor,
    budget: int,
    temperature: float,
    top_p: float,
    stops: torch.Tensor,
    generator: torch.Generator,
) -> list[list[int]]:
    """Decode one bucket of equal-length prompts (tokens: [B, T]) for at most ``budget`` tokens."""
    out: list[list[int]] = [[] for _ in range(tokens.shape[0])]
    if budget <= 0:
        return out
    cache = KVCache.empty(model.args.n_layers)
    alive = torch.arange(tokens.shape[0], device=tokens.device)  # original row of each batch row
    # Project only the last position to the vocabulary: the prompt's other logits are unused.
    logits = model.output(model.hidden_states(tokens, cache=cache)[:, -1])  # [B, vocab]
    for step in range(budget):
        nxt = _pick(logits, temperature, top_p, generator)  # [B]
        done = torch.isin(nxt, stops)
        for row, tok, stop in zip(alive.tolist(), nxt.tolist(), done.tolist(), strict=True):
            if not stop:
                out[row].append(tok)
        keep = ~done
        if step == budget - 1 or not keep.any():
            break
        if not keep.all():
            alive, nxt = alive[keep], nxt[keep]
            cache.keys = [k[keep] for k in cache.keys]
            cache.values = [v[keep] for v in cache.values]
        logits = model.output(model.hidden_states(nxt[:, None], cache=cache)[:, -1])
    return out


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """[B, vocab] logits -> [B] next tokens: argmax, or a nucleus sample at ``temperature``."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # Keep a token while the mass before it is below top_p (the first token is always kept).
        outside = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
