"""Code and math routing (recipe, "Code and reasoning data": domain-specific pipelines pick out code
and math pages, there with DistilRoBERTa classifiers on Llama 2 labels).

Each document gets a ``domain`` in {general, code, math}. Strong structural evidence decides first:
the page router's choice before extraction (``page_domain``: code or math markup in the HTML,
``factory.data.page_routing``), math markup counted by the extractor (``n_math``), a high density
of code blocks (``n_code_blocks`` per 1000 words), or a page whose lines mostly look like source
code (``code_line_frac``: a file served as a page). The remaining
documents go to a fastText classifier trained here on weak labels from that same evidence (pages
with math / with code / with neither), so prose that discusses code or math without marked-up
blocks is still routed by its vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from factory.core.stage import StageConfig
from factory.data.quality import QualityConfig, fasttext_probs, train_fasttext

# A line that reads as source code: a keyword, comment, decorator or prompt at its start, an
# assignment or a bare call, or a block opener/closer at its end.
_CODE_LINE = re.compile(
    r"^\s*(def |class |import |from \S+ import|return\b|if .*:$|for .*:$|while .*:$|elif |else:|try:|except\b|"
    r"#|@\w|#include|public |private |static |const |var |let |function\b|\$ |>>> |\.\.\. )"
    r"|^\s*[\w.\[\]]+\s*(=|\+=|-=)\s*\S|^\s*[\w.]+\(.*\)\s*$|[{};]\s*$|^\s*[}\])]"
)


class RoutingConfig(StageConfig):
    """Thresholds of the code/math router."""

    min_code_block_density: float = Field(
        4.0, gt=0.0, description="Code blocks per 1000 words that alone route a page to code.")
    min_math: int = Field(3, ge=1, description="Math expressions that alone route a page to math.")
    min_code_line_frac: float = Field(
        0.35, gt=0.0, le=1.0, description="Share of code-looking lines that routes a page to code.")
    min_prob: float = Field(
        0.6, gt=0.0, le=1.0, description="fastText probability needed to route a remaining page to code or math.")


def code_line_frac(text: str) -> float:
    """Share of non-empty lines that look like source code."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    return sum(bool(_CODE_LINE.search(ln)) for ln in lines) / len(lines) if lines else 0.0


def evidence_domain(text: str, n_code_blocks: int, n_math: int, page_domain: str, cfg: RoutingConfig) -> str | None:
    """The domain that structural evidence alone decides, or None when it is not conclusive."""
    if page_domain != "general":
        return page_domain
    if n_math >= cfg.min_math:
        return "math"
    density = 1000.0 * n_code_blocks / max(len(text.split()), 1)
    if density >= cfg.min_code_block_density or code_line_frac(text) >= cfg.min_code_line_frac:
        return "code"
    return None


def weak_label(text: str, n_code_blocks: int, n_math: int, page_domain: str) -> str:
    """Training label of the router's fastText: the page router's code/math, any math -> math,
    any code -> code, else general."""
    if page_domain != "general":
        return page_domain
    if n_math > 0:
        return "math"
    if n_code_blocks > 0 or code_line_frac(text) > 0.2:
        return "code"
    return "general"


def train_router(texts: Sequence[str], n_code: Sequence[int], n_math: Sequence[int], page_domains: Sequence[str],
                 path: Path, qcfg: QualityConfig) -> Path | None:
    """fastText on weak labels; None when the corpus offers a single label (nothing to learn)."""
    labels = [weak_label(t, c, m, d) for t, c, m, d in zip(texts, n_code, n_math, page_domains, strict=True)]
    if len(set(labels)) < 2:
        return None
    return train_fasttext(texts, labels, path, qcfg)


def route(texts: Sequence[str], n_code: Sequence[int], n_math: Sequence[int], page_domains: Sequence[str],
          model: Path | None, cfg: RoutingConfig, max_chars: int) -> list[str]:
    """Domain per document: structural evidence first, then the fastText router."""
    domains = [evidence_domain(t, c, m, d, cfg) for t, c, m, d in zip(texts, n_code, n_math, page_domains, strict=True)]
    rest = [i for i, d in enumerate(domains) if d is None]
    if model is not None and rest:
        probs = fasttext_probs(model, [texts[i] for i in rest], max_chars)
        for k, i in enumerate(rest):
            best = max(("code", "math"), key=lambda d: probs.get(d, np.zeros(len(rest)))[k])
            domains[i] = best if probs.get(best, np.zeros(len(rest)))[k] >= cfg.min_prob else "general"
    return [d or "general" for d in domains]
