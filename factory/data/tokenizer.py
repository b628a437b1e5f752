"""The tokenizer stage: byte-level BPE with the Llama 3 special tokens (recipe: "Model Architecture",
vocabulary; "Post-training Data", chat dialog format).

Llama 3 uses a 128K tiktoken-style BPE whose pre-tokenizer splits numbers into groups of at most
three digits, plus 256 special tokens after the base vocabulary. We train the same kind of
byte-level BPE with HF ``tokenizers`` on a sample of the filtered corpus, with one deliberate,
configurable deviation: ``digit_group: 1`` splits every digit into its own token, as Llama 2 did.
A tiny model learns column arithmetic from one token per digit but hardly from merged 3-digit
tokens (measured on a 0.74M-parameter decoder); ``digit_group: 3`` restores Llama 3's rule.

The artifact's format (file names, special-token names, the chat template, the loaders) is
``factory.model.tokenizer_files``, where every layer from the model up can read it.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.tokenizer_files import (
    CHAT_TEMPLATE,
    CHAT_TEMPLATE_FILE,
    NAMED_SPECIAL_TOKENS,
    SPECIAL_TOKENS_FILE,
    TOKENIZER_FILE,
    reserved_token,
)

# Llama 3's pre-tokenizer regex (tiktoken cl100k-style) with the digit group size as a parameter.
_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,DIGITS}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

class TokenizerConfig(StageConfig):
    """Byte-level BPE training on a sample of the filtered corpus."""

    vocab_size: int = Field(4096, description="Total vocabulary size, special tokens included (Llama 3: 128256).")
    num_special_tokens: int = Field(
        256, description="Special tokens after the BPE vocabulary: the named ones plus reserved ones (Llama 3: 256)."
    )
    digit_group: int = Field(
        1, description="Most digits per pre-token: 1 splits digits individually (Llama 2; tiny models learn arithmetic "
        "from one token per digit), 3 is Llama 3's rule (at real model sizes)."
    )
    train_docs: int = Field(2000, description="Documents sampled from the corpus to train the BPE merges.")
    heldout_docs: int = Field(200, description="Other documents sampled to measure characters per token.")
    min_frequency: int = Field(2, description="Minimum pair count for a merge.")
    seed: int = Field(0, description="Seed of the document sample.")


def split_pattern(digit_group: int) -> str:
    if digit_group < 1:
        raise ValueError(f"digit_group must be >= 1, got {digit_group}")
    return _SPLIT_PATTERN.replace("{1,DIGITS}", "" if digit_group == 1 else f"{{1,{digit_group}}}")


def special_token_names(num_special_tokens: int) -> list[str]:
    if num_special_tokens < len(NAMED_SPECIAL_TOKENS):
        raise ValueError(f"num_special_tokens must be >= {len(NAMED_SPECIAL_TOKENS)}, got {num_special_tokens}")
    n_reserved = num_special_tokens - len(NAMED_SPECIAL_TOKENS)
    return NAMED_SPECIAL_TOKENS + [reserved_token(2 + i) for i in range(n_reserved)]


def train_bpe(texts: list[str], vocab_size: int, *, num_special_tokens: int = 256, digit_group: int = 1,
              min_frequency: int = 2):
    """Train a byte-level BPE (``tokenizers.Tokenizer``) whose last ``num_special_tokens`` ids are specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = special_token_names(num_special_tokens)
    base = vocab_size - len(specials)
    if base < 256:
        raise ValueError(f"vocab_size {vocab_size} leaves {base} BPE tokens; need at least the 256 bytes")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern(digit_group)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=base, min_frequency=min_frequency, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # A corpus too small to reach the target still gets its specials right after its vocabulary.
    tok.add_special_tokens(specials)
    return tok


def chars_per_token(tok, texts: list[str]) -> float:
    chars = sum(len(t) for t in texts)
    tokens = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
    return chars / tokens if tokens else 0.0


def save_tokenizer(tok, out: Path) -> dict[str, int]:
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / TOKENIZER_FILE))
    specials = {t.content: i for i, t in tok.get_added_tokens_decoder().items() if t.special}
    specials = dict(sorted(specials.items(), key=lambda kv: kv[1]))
    (out / SPECIAL_TOKENS_FILE).write_text(json.dumps(specials, indent=2))
    (out / CHAT_TEMPLATE_FILE).write_text(CHAT_TEMPLATE)
    return specials


def run_tokenizer(cfg: TokenizerConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    import pandas as pd

    docs = pd.read_parquet(inputs["filtered_corpus"] / "docs.parquet")
    docs = docs[docs["text"].str.len() > 0].reset_index(drop=True)
    if docs.empty:
        raise ValueError("filtered_corpus has no non-empty documents")
    order = list(range(len(docs)))
    random.Random(cfg.seed).shuffle(order)
    # Held-out documents are taken first so the measurement never sees a training document.
    n_held = min(cfg.heldout_docs, len(order) // 2)
    held, train_idx = order[:n_held], order[n_held:n_held + cfg.train_docs]
    ctx.log(f"training BPE (vocab {cfg.vocab_size}) on {len(train_idx)} documents")
    tok = train_bpe(docs["text"].iloc[train_idx].tolist(), cfg.vocab_size, num_special_tokens=cfg.num_special_tokens,
                    digit_group=cfg.digit_group, min_frequency=cfg.min_frequency)
    specials = save_tokenizer(tok, out)
    held_docs = docs.iloc[held]
    meta: dict[str, Any] = {
        "vocab_size": tok.get_vocab_size(),
        "bpe_vocab_size": tok.get_vocab_size() - len(specials),
        "num_special_tokens": len(specials),
        "digit_group": cfg.digit_group,
        "train_docs": len(train_idx),
        "train_chars": int(docs["text"].iloc[train_idx].str.len().sum()),
        "heldout_docs": len(held),
        "chars_per_token": round(chars_per_token(tok, held_docs["text"].tolist()), 4),
    }
    if "language" in docs.columns and len(held_docs):
        meta["chars_per_token_by_language"] = {
            str(lang): round(chars_per_token(tok, group["text"].tolist()), 4)
            for lang, group in held_docs.groupby("language")
        }
    return meta
