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

import functools
import math
from collections.abc import Callable, Collection

import torch
import torch.nn.functional as F

from factory.model.llama import KVCache, Transformer

# Finished rows are dropped from the batch once they are this fraction of it (see ``_decode``).
COMPACT_FRACTION = 0.25
# Rows prefilled together, each group only as wide as its longest prompt (see ``_prefill``).
PREFILL_ROWS = 16
# Draws from the whole softmax tried before a row's nucleus is found by sorting (see ``_pick``).
NUCLEUS_DRAWS = 4


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
    compile: bool = False,
) -> list[list[int]]:
    """New tokens of each prompt, in prompt order; a stop token ends a row and is not returned.

    ``temperature == 0`` is greedy decoding; otherwise tokens are sampled from the softmax at that
    temperature restricted to the smallest nucleus of probability mass ``top_p``. ``seed`` makes
    sampling reproducible. Generation also stops at the model's ``max_seq_len``.

    ``compile`` runs the one-token decode step through ``torch.compile`` (dynamic shapes: one
    graph serves every batch size and cache length). Off by default, since on CPU it does not pay
    at our sizes: on the 2-core host here (``tiny`` flavor, 64 prompts of 20-40 tokens, 32 new
    tokens) the first call compiles for 24-42 s (9 s from inductor's warm on-disk cache), and a
    call then takes 143 ms instead of 150 ms with two threads (204 instead of 224 with one): it
    would break even after ~1 000 such batches (~2M tokens), while a demo rejection sampling stage
    decodes ~13k tokens. It is meant for long runs and for GPUs, where a step is launch-bound.
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
    pick = functools.partial(_pick, temperature=temperature, top_p=top_p, generator=generator)
    decode_step = torch.compile(_step, dynamic=True) if compile else _step
    # inference_mode: no autograd bookkeeping (version counters, views) on a step's many small ops.
    with torch.inference_mode():
        for first in range(0, len(order), batch_size):
            chunk = order[first : first + batch_size]
            new = _decode(model, [prompts[i] for i in chunk], max_new_tokens, pick, stops, decode_step)
            for i, tokens in zip(chunk, new, strict=True):
                results[i] = tokens
    return results


def _decode(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    pick: Callable[[torch.Tensor], torch.Tensor],
    stops: torch.Tensor,
    decode_step: Callable[[Transformer, torch.Tensor, KVCache], torch.Tensor],
) -> list[list[int]]:
    """Decode one batch of prompts of any lengths together; new tokens of each, stop tokens excluded.
    Repeated prompts are prefilled once.

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
    # Copies of one prompt (rejection sampling's K samples) share one prefill: only the distinct
    # prompts run through the model, then each row gets its prompt's cache rows and logits.
    distinct: dict[tuple[int, ...], int] = {}
    source = torch.tensor([distinct.setdefault(tuple(p), len(distinct)) for p in prompts], device=device)  # [B]
    tokens = torch.zeros(len(distinct), width, dtype=torch.long, device=device)  # left-padded with token 0
    for row, p in enumerate(distinct):
        tokens[row, width - len(p) :] = torch.tensor(p)
    distinct_lengths = torch.tensor([len(p) for p in distinct], device=device)  # [U]
    dtype = model.layers[0].attention.wk.weight.dtype  # the dtype keys and values come out in
    # The last token picked is never fed back: width + steps - 1 slots hold every input.
    cache = KVCache.allocate(model.args, len(distinct), width + steps - 1, start=width - distinct_lengths, dtype=dtype,
                             device=device)
    logits = _prefill(model, tokens, distinct_lengths, cache)  # [U, vocab]
    if len(distinct) < b:
        cache.keep(source)
        logits = logits[source]  # [B, vocab]

    out = torch.zeros(b, steps, dtype=torch.long, device=device)  # [B, steps] picks by original row
    count = torch.zeros(b, dtype=torch.long, device=device)  # [B] tokens kept per original row
    rows = torch.arange(b, device=device)  # [b] original row of each batch row
    live = torch.ones(b, dtype=torch.bool, device=device)  # [b] batch rows still producing
    for step in range(steps):
        nxt = pick(logits)  # [b]
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
        logits = decode_step(model, nxt[:, None], cache)
    return [out[row, :n].tolist() for row, n in enumerate(count.tolist())]


def _step(model: Transformer, tokens: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Feed tokens ([B, T]) into the cache's next T slots -> [B, vocab] logits of the last one.

    Only the last slot is projected to the vocabulary: the other logits are never used.
    """
    return model.output(model.hidden_states(tokens, cache=cache)[:, -1])


def _prefill(model: Transformer, tokens: torch.Tensor, lengths: torch.Tensor, cache: KVCache) -> torch.Tensor:
    """Run the left-padded prompts (tokens: [B, W]) into the cache -> [B, vocab] next-token logits.

    Rows go in groups of ``PREFILL_ROWS`` consecutive rows, each through a cache window that starts
    at its longest prompt, so a group of short prompts skips the padding the longest prompt of the
    batch imposes (``generate`` passes rows sorted by length). Groups of equal width run as one.
    """
    b, width = tokens.shape
    groups: list[tuple[int, int, int]] = []  # (first row, end row, width of the widest prompt)
    for first in range(0, b, PREFILL_ROWS):
        end = min(b, first + PREFILL_ROWS)
        w = int(lengths[first:end].max())
        if groups and groups[-1][2] == w:
            groups[-1] = (groups[-1][0], end, w)
        else:
            groups.append((first, end, w))
    logits = []
    for first, end, w in groups:
        window = cache.window(slice(first, end), width - w)
        logits.append(_step(model, tokens[first:end, width - w :], window))  # last slot: last prompt token
    cache.advance(width)
    return torch.cat(logits)


def _pick(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """[B, vocab] logits -> [B] next tokens: argmax, or a nucleus sample at ``temperature``.

    The nucleus of a row is every token whose more probable tokens hold less than ``top_p`` of the
    mass (the most probable token is always in it; tokens tied at the boundary are all in it).
    Sampling from it needs no sort of the vocabulary in the common case: a token drawn from the
    whole softmax and kept only if it lies in the nucleus is a draw from the renormalized nucleus,
    and it lies there with probability >= top_p. Rows still rejected after ``NUCLEUS_DRAWS``
    draws (a small top_p over a flat distribution) find their nucleus by sorting.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [B, vocab]
    if top_p == 1:
        return _draw(probs, generator)
    picked = torch.empty(probs.shape[0], dtype=torch.long, device=probs.device)
    todo = torch.arange(probs.shape[0], device=probs.device)  # rows without a nucleus token yet
    for _ in range(NUCLEUS_DRAWS):
        tok = _draw(probs, generator)  # [b]
        p_tok = probs.gather(1, tok[:, None])  # [b, 1]
        # Mass of the more probable tokens: sum(p - p_tok over them) + p_tok * their count.
        excess = (probs - p_tok).relu_()  # [b, vocab]
        above = excess.sum(dim=-1) + p_tok[:, 0] * excess.sign_().sum(dim=-1)
        inside = above < top_p
        picked[todo[inside]] = tok[inside]
        todo, probs = todo[~inside], probs[~inside]
        if not len(todo):
            return picked
    sorted_probs, _ = probs.sort(dim=-1, descending=True)
    in_nucleus = sorted_probs.cumsum(dim=-1) - sorted_probs < top_p  # [b, vocab], a prefix of each row
    # The least probable token of each nucleus; every token at least as probable is in it.
    floor = sorted_probs.gather(1, in_nucleus.sum(dim=-1, keepdim=True) - 1)  # [b, 1]
    picked[todo] = _draw(probs * (probs >= floor), generator)
    return picked


def _draw(weights: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[B, vocab] nonnegative weights -> [B] tokens drawn in proportion to them.

    Inverse transform sampling in two levels: a block of about sqrt(vocab) tokens by the blocks'
    masses, then a token inside it. That needs one uniform per level and row (``torch.multinomial``
    draws one per token) and no cumulative sum over the whole vocabulary (a slow sequential scan
    on CPU), and P(token) = P(its block) * P(token | block) is exact.
    """
    b, vocab = weights.shape
    width = math.isqrt(vocab - 1) + 1  # tokens per block: ceil(sqrt(vocab))
    n_blocks = -(-vocab // width)
    if n_blocks * width > vocab:
        weights = F.pad(weights, (0, n_blocks * width - vocab))  # zero weights fill the last block
    blocks = weights.view(b, n_blocks, width)
    rows = torch.arange(b, device=weights.device)
    block = _inverse_cdf(blocks.sum(dim=-1).cumsum(dim=-1), generator)  # [B]
    return block * width + _inverse_cdf(blocks[rows, block].cumsum(dim=-1), generator)


def _inverse_cdf(cdf: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """[B, n] cumulative (unnormalized) weights -> [B] indices, each drawn in proportion to its weight.

    The uniform stays below the row's total, so the first index whose cumulative weight exceeds it
    has a nonzero weight.
    """
    total = cdf[:, -1:]  # [B, 1]
    u = torch.rand(total.shape, generator=generator, device=cdf.device, dtype=cdf.dtype) * total
    u = torch.minimum(u, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, u, right=True).squeeze(1)
