"""Batched autoregressive generation with a preallocated KV cache (recipe: "Post-training Data",
rejection sampling; "Inference").

``generate`` serves rejection sampling (K samples of one prompt), preference data and evaluation.
Prompts are sorted by length and cut into batches, so a batch holds prompts of similar (not equal)
lengths; each batch is left-padded to its longest prompt and decoded together in one
``KVCache`` (``factory.model.llama``): every row runs at its own RoPE positions and never attends
to its padding, so greedy output equals a single-prompt no-cache loop whatever the batch holds.
A row ends at a stop token, at its token budget or at the model's context length; finished rows
stop producing output and leave the batch once dropping them pays (see ``_decode``).
"""

from __future__ import annotations

from collections.abc import Collection

import torch

from factory.model.llama import KVCache, Transformer

# Finished rows are dropped from the batch once they are this fraction of it (see ``_decode``).
COMPACT_FRACTION = 0.25


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

    # Similar lengths share a batch, so little of it is padding (stable: K samples stay together).
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    results: list[list[int]] = [[] for _ in prompts]
    if max_new_tokens <= 0:
        return results
    with torch.no_grad():
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            new = _decode(model, [prompts[i] for i in chunk], max_new_tokens, temperature, top_p, stops, generator)
            for i, tokens in zip(chunk, new, strict=True):
                results[i] = tokens
    return results


def _decode(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    stops: torch.Tensor,
    generator: torch.Generator,
) -> list[list[int]]:
    """Decode one batch of prompts of any lengths together; new tokens of each, stop tokens excluded.

    Compaction, not refill: in the left-padded layout every row writes the same cache slot at each
    step, so a new prompt cannot join a running batch without a prefill of its own. A finished row
    left in the batch costs one row of every later step; dropping it costs a copy of the whole
    cache. Rows are dropped once they are ``COMPACT_FRACTION`` of the batch: at most that share of
    a step is wasted, and the copies are few (about log(B) / log(4/3), 15 for a batch of 64).
    """
    device = stops.device
    lengths = torch.tensor([len(p) for p in prompts], device=device)  # [B]
    b, width = len(prompts), int(lengths.max())
    # Each row's budget: max_new_tokens, cut so that the row never passes the context length.
    budget = (model.args.max_seq_len - lengths).clamp(max=max_new_tokens)  # [B], >= 1
    steps = int(budget.max())
    tokens = torch.zeros(b, width, dtype=torch.long, device=device)  # left-padded with token 0
    for row, p in enumerate(prompts):
        tokens[row, width - len(p) :] = torch.tensor(p)
    dtype = next(model.parameters()).dtype
    # The last token picked is never fed back: width + steps - 1 slots hold every input.
    cache = KVCache(model.args, b, width + steps - 1, start=width - lengths, dtype=dtype, device=device)

    out = torch.zeros(b, steps, dtype=torch.long, device=device)  # [B, steps] picks by original row
    count = torch.zeros(b, dtype=torch.long, device=device)  # [B] tokens kept per original row
    rows = torch.arange(b, device=device)  # [b] original row of each batch row
    live = torch.ones(b, dtype=torch.bool, device=device)  # [b] batch rows still producing
    # Project only the last slot (each row's last prompt token) to the vocabulary.
    logits = model.output(model.hidden_states(tokens, cache=cache)[:, -1])  # [b, vocab]
    for step in range(steps):
        nxt = _pick(logits, temperature, top_p, generator)  # [b]
        keep = live & ~torch.isin(nxt, stops)
        # Invariant: a row keeps tokens only while live, so its output is out[row, :count[row]].
        out[rows, step] = nxt
        count[rows] += keep
        live = keep & (count[rows] < budget[rows])
        if not live.any():
            break
        if (~live).sum() >= COMPACT_FRACTION * len(rows):
            alive = live.nonzero().squeeze(1)
            rows, live, nxt = rows[alive], live[alive], nxt[alive]
            cache.keep(alive)
        logits = model.output(model.hidden_states(nxt[:, None], cache=cache)[:, -1])
    return [out[row, :n].tolist() for row, n in enumerate(count.tolist())]


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
