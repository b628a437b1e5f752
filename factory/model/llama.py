"""Llama 3 decoder architecture (recipe: "Model Architecture").

A standard dense Transformer: pre-norm RMSNorm, rotary position embeddings with a configurable
base frequency (500 000 in Llama 3), grouped-query attention and a SwiGLU feed-forward block.
Architecture only: no logging, training or parallelism code lives here.

Extras serve the recipe's later stages:
- ``doc_ids`` gives packed sequences document masking (attention never crosses a document
  boundary), as in pre-training on packed batches;
- ``KVCache`` holds preallocated key/value buffers for batched decoding of left-padded prompts
  (``factory.model.generate``), each row at its own RoPE positions;
- ``SequenceScorer`` puts a linear head on the last token's hidden state: the reward model
  (one output) and the guard classifiers (one output per class).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ModelArgs:
    """Shape of a Llama decoder; every field maps onto a Hugging Face ``LlamaConfig`` field."""

    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    ffn_hidden_dim: int
    norm_eps: float = 1e-5
    rope_theta: float = 500_000.0
    max_seq_len: int = 2048

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim={self.dim} is not divisible by n_heads={self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError("head_dim must be even for rotary embeddings")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 for stability, return in the input dtype.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.type_as(x) * self.weight


def rope_cos_sin(head_dim: int, positions: torch.Tensor, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables for ``positions`` ([T] or [B, T]) -> two tensors of shape [..., head_dim // 2]."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=positions.device) / head_dim))
    angles = positions.float()[..., None] * inv_freq
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate query/key halves. x: [B, H, T, D]; cos/sin: [T, D/2].

    Uses the "rotate half" layout (first half / second half of the head dimension), which is the
    layout of Hugging Face Llama checkpoints, so exported weights need no permutation.
    """
    d = x.shape[-1] // 2
    x1, x2 = x[..., :d].float(), x[..., d:].float()
    out = torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)
    return out.type_as(x)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """[B, H_kv, T, D] -> [B, H_kv * n_rep, T, D]: share each key/value head across its query group."""
    if n_rep == 1:
        return x
    b, h, t, d = x.shape
    return x[:, :, None, :, :].expand(b, h, n_rep, t, d).reshape(b, h * n_rep, t, d)


@dataclass
class KVCache:
    """Preallocated key/value buffers for batched incremental decoding (recipe: "Inference").

    Per layer one keys and one values buffer of shape [B, H_kv, capacity, D], written in place: no
    tensor grows during decoding. Rows are left-padded: row b's first real token sits in slot
    ``start[b]`` and every row writes its next token into the same slot ``length``, so a step writes
    one slice of each buffer. Slot s of row b holds RoPE position s - start[b] (each row's true
    position); the pad slots before ``start[b]`` are hidden from its attention.
    """

    keys: list[torch.Tensor]  # per layer [B, H_kv, capacity, D]
    values: list[torch.Tensor]  # per layer [B, H_kv, capacity, D]
    start: torch.Tensor  # [B] slot of each row's first real token (its left padding)
    length: int = 0  # slots written so far, the same for every row

    @classmethod
    def allocate(cls, args: ModelArgs, batch: int, capacity: int, *, start: torch.Tensor | None = None,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> KVCache:
        """Zeroed buffers of ``capacity`` slots for ``batch`` rows (unpadded unless ``start`` is given)."""
        shape = (batch, args.n_kv_heads, capacity, args.head_dim)
        return cls(
            keys=[torch.zeros(shape, dtype=dtype, device=device) for _ in range(args.n_layers)],
            values=[torch.zeros(shape, dtype=dtype, device=device) for _ in range(args.n_layers)],
            start=torch.zeros(batch, dtype=torch.long, device=device) if start is None else start.to(device),
        )

    @property
    def capacity(self) -> int:
        return self.keys[0].shape[2]

    def positions(self, t: int) -> torch.Tensor:
        """[B, t] RoPE positions of the next t slots (pad slots clamp to 0; they are never attended)."""
        slots = torch.arange(self.length, self.length + t, device=self.start.device)
        return (slots[None, :] - self.start[:, None]).clamp(min=0)

    def mask(self, t: int) -> torch.Tensor:
        """[B, 1, t, length + t] boolean mask of the next t queries over all written keys.

        A query sees the real keys up to its own slot. A pad query sees only itself, so its softmax
        row is never empty (an all-masked row would give NaN, and 0 * NaN leaks through the masked
        weights of the next layer); its output is never read.
        """
        end = self.length + t
        query = torch.arange(self.length, end, device=self.start.device)[:, None]  # [t, 1]
        key = torch.arange(end, device=self.start.device)[None, :]  # [1, S]
        real = key[None] >= self.start[:, None, None]  # [B, 1, S]
        return ((real & (key <= query)) | (key == query))[:, None]  # [B, 1, t, S]

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write k, v ([B, H_kv, t, D]) into slots [length, length + t) -> keys, values [B, H_kv, length + t, D]."""
        end = self.length + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} slots; writing up to slot {end}")
        self.keys[layer][:, :, self.length : end] = k
        self.values[layer][:, :, self.length : end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def advance(self, t: int) -> None:
        """Mark the next t slots written (after every layer has written them)."""
        self.length += t

    def window(self, rows: slice, first_slot: int) -> KVCache:
        """An empty cache over ``rows`` and slots [first_slot, capacity) that writes into these buffers.

        Prefilling rows whose padding ends at or after ``first_slot`` through their window skips
        the pad slots before it.
        """
        start = self.start[rows] - first_slot
        if bool((start < 0).any()):
            raise ValueError(f"rows {rows} have real tokens before slot {first_slot}")
        return KVCache([k[rows, :, first_slot:] for k in self.keys], [v[rows, :, first_slot:] for v in self.values],
                       start)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the batch rows ``rows`` ([B'] indices), in that order; a row listed twice is copied."""
        self.keys = [k.index_select(0, rows) for k in self.keys]
        self.values = [v.index_select(0, rows) for v in self.values]
        self.start = self.start.index_select(0, rows)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.n_kv_heads
        self.head_dim = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * args.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, args.n_kv_heads * args.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * args.head_dim, args.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor | None,
        cache: KVCache | None = None,
        layer: int = 0,
    ) -> torch.Tensor:
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)  # [B, H, T, D]
        k = self.wk(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)  # [B, Hkv, T, D]
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer, k, v)  # [B, Hkv, S, D]: every written slot, pads hidden by mask
            # Query groups read their shared cached head in place: no per-step copy of the cache.
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
        else:
            n_rep = self.n_heads // self.n_kv_heads
            k, v = repeat_kv(k, n_rep), repeat_kv(v, n_rep)
            if mask is None:
                out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        out = out.transpose(1, 2).reshape(b, t, self.n_heads * self.head_dim)
        return self.wo(out)


class FeedForward(nn.Module):
    """SwiGLU: w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, args.norm_eps)

    def forward(self, x, cos, sin, mask, cache=None, layer=0):
        h = x + self.attention(self.attention_norm(x), cos, sin, mask, cache, layer)
        return h + self.feed_forward(self.ffn_norm(h))


def document_causal_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask [B, 1, T, T] for packed sequences: causal and within one document.

    doc_ids: [B, T] integer id of the document each position belongs to.
    """
    t = doc_ids.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=doc_ids.device).tril()
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]  # [B, T, T]
    return (same_doc & causal)[:, None, :, :]


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(args) for _ in range(args.n_layers))
        self.norm = RMSNorm(args.dim, args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # GPT-2/Llama style init: N(0, 0.02), residual projections scaled by depth.
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * self.args.n_layers) if name.endswith(("wo.weight", "w2.weight")) else 0.02
                nn.init.normal_(p, mean=0.0, std=std)

    def hidden_states(
        self,
        tokens: torch.Tensor,
        doc_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """tokens: [B, T] -> final normed hidden states [B, T, dim].

        With a ``cache``, tokens fill its next T slots: positions and the mask come from the cache.
        """
        _, t = tokens.shape
        if cache is not None and doc_ids is not None:
            raise ValueError("doc_ids (packed training sequences) and a KV cache (decoding) exclude each other")
        if cache is not None:
            positions, mask = cache.positions(t), cache.mask(t)  # [B, T], [B, 1, T, S]
        elif doc_ids is not None:
            # Positions restart at each document so RoPE sees every document from position 0.
            positions, mask = _positions_within_documents(doc_ids), document_causal_mask(doc_ids)
        else:
            positions, mask = torch.arange(t, device=tokens.device), None
        cos, sin = rope_cos_sin(self.args.head_dim, positions, self.args.rope_theta)
        if positions.dim() == 2:
            cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, D/2] broadcast over heads
        h = self.tok_embeddings(tokens)
        for i, layer in enumerate(self.layers):
            h = layer(h, cos, sin, mask, cache, i)
        if cache is not None:
            cache.advance(t)
        return self.norm(h)

    def forward(
        self,
        tokens: torch.Tensor,
        doc_ids: torch.Tensor | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """tokens: [B, T] -> logits [B, T, vocab]."""
        return self.output(self.hidden_states(tokens, doc_ids, cache))

    def num_params(self, exclude_embeddings: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.tok_embeddings.weight.numel() if exclude_embeddings else n

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token: 6 * non-embedding params + attention (12 * L * d * T), as in PaLM/nanochat."""
        a = self.args
        return 6.0 * self.num_params(exclude_embeddings=True) + 12.0 * a.n_layers * a.dim * seq_len


def _positions_within_documents(doc_ids: torch.Tensor) -> torch.Tensor:
    """[B, T] document ids -> [B, T] position of each token inside its own document."""
    b, t = doc_ids.shape
    idx = torch.arange(t, device=doc_ids.device).expand(b, t)
    starts = torch.ones_like(doc_ids, dtype=torch.bool)
    starts[:, 1:] = doc_ids[:, 1:] != doc_ids[:, :-1]
    start_idx = torch.where(starts, idx, torch.zeros_like(idx)).cummax(dim=1).values
    return idx - start_idx


class SequenceScorer(nn.Module):
    """A Transformer backbone with a linear head on the last real token of each sequence.

    Used for the reward model (``n_outputs=1``) and guard classifiers (one logit per class). The
    backbone keeps the decoder's parameter names, so a pre-trained checkpoint loads into it.
    """

    def __init__(self, args: ModelArgs, n_outputs: int):
        super().__init__()
        self.backbone = Transformer(args)
        self.score = nn.Linear(args.dim, n_outputs, bias=True)
        nn.init.normal_(self.score.weight, std=0.02)
        nn.init.zeros_(self.score.bias)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """tokens: [B, T] right-padded; lengths: [B] real lengths -> scores [B, n_outputs]."""
        h = self.backbone.hidden_states(tokens)  # [B, T, dim]
        last = h[torch.arange(h.shape[0], device=h.device), lengths - 1]  # [B, dim]
        return self.score(last)
