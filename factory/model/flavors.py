"""Named model sizes (recipe: "Model Architecture"; Table 3 of the paper for 8B/70B/405B).

One function builds ``ModelArgs`` from a flavor name and a vocabulary size. The small flavors are
what a CPU can train here; the large ones are the paper's shapes, used by the ``cluster`` profile.
"""

from __future__ import annotations

from factory.model.llama import ModelArgs

# name -> (dim, n_layers, n_heads, n_kv_heads, ffn_hidden_dim)
FLAVORS: dict[str, tuple[int, int, int, int, int]] = {
    "debug": (32, 2, 4, 2, 64),
    "nano": (64, 2, 4, 2, 192),
    "micro": (96, 3, 6, 2, 256),
    "tiny": (128, 4, 4, 2, 352),
    "small": (192, 6, 6, 2, 512),
    "base": (256, 8, 8, 4, 704),
    "1B": (2048, 16, 32, 8, 8192),
    "8B": (4096, 32, 32, 8, 14336),
    "70B": (8192, 80, 64, 8, 28672),
    "405B": (16384, 126, 128, 8, 53248),
}


def model_args(flavor: str, vocab_size: int, *, rope_theta: float = 500_000.0, max_seq_len: int = 2048) -> ModelArgs:
    """Build the ``ModelArgs`` of a named flavor; unknown names raise and list the valid ones."""
    if flavor not in FLAVORS:
        raise KeyError(f"unknown model flavor {flavor!r}; valid flavors: {', '.join(FLAVORS)}")
    dim, n_layers, n_heads, n_kv_heads, ffn = FLAVORS[flavor]
    return ModelArgs(
        dim=dim,
        n_layers=n_layers,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        vocab_size=vocab_size,
        ffn_hidden_dim=ffn,
        rope_theta=rope_theta,
        max_seq_len=max_seq_len,
    )
