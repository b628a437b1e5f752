"""Heuristic document filters (recipe, "Heuristic Filtering"; "Multilingual data": language-specific
heuristics).

Datatrove's shape: each filter is a small class whose ``filter(doc)`` returns ``True`` (keep) or
``(False, reason)``; a document is a mapping with at least ``text`` and ``language``. Thresholds
live in one typed ``FilterThresholds`` (Gopher's published values as defaults), with per-language
overrides resolved by ``LanguageThresholds``. The filters:

- ``LineRepetitionCleaner`` (line level): removes lines whose words are mostly covered by n-grams
  repeated across many lines of the same document — logging, error messages, counters.
- ``RepetitionFilter`` (document level): Gopher's duplicated line/paragraph fractions and
  duplicated n-gram coverage (top n-gram for n = 2..4, all duplicated n-grams for n = 5..10).
- ``QualityFilter``: length, mean word length, symbol-to-word, bullet/ellipsis lines, alphabetic
  words and stop words (Gopher quality rules, per-language stop words).
- ``DirtyWordsFilter``: share of words from a per-language list of adult-content terms.
- ``TokenKLFilter``: KL divergence of the document's unigram distribution from the corpus's
  (per language, computed in a first pass by ``unigram_counts``): outlier-token documents.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
from pydantic import Field

from factory.core.stage import StageConfig

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
# A CJK character is one token (those scripts don't separate words by spaces); elsewhere \w runs.
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+", re.UNICODE)
_DIGITS = re.compile(r"\d")
_ALPHA = re.compile(r"[^\W\d_]", re.UNICODE)
_BULLETS = ("•", "●", "○", "■", "□", "▪", "‣", "–", "-", "*", "·")

STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the be to of and that have with".split()),
    "de": frozenset("der die das und zu den mit ist nicht ein".split()),
    "fr": frozenset("le la les de et des un une est pour".split()),
    "es": frozenset("el la de que y en los las un por".split()),
    "it": frozenset("il la di che e un per non una sono".split()),
    "pt": frozenset("o a de que e do da em os um".split()),
}

# Adult-content terms only (the recipe's "dirty word" counting targets adult sites); kept clinical.
DIRTY_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("porn porno pornography pornographic xxx nude nudes naked sex sexy erotic erotica fetish "
                    "hentai escort escorts milf nsfw camgirl orgasm masturbation stripper".split()),
    "de": frozenset("porno pornografie pornos nackt nackte sex sexy erotik erotisch fetisch escort xxx "
                    "nacktbilder sexkontakte".split()),
    "fr": frozenset("porno pornographie pornographique nue nues sexe sexy érotique fétiche escort xxx "
                    "libertine".split()),
    "es": frozenset("porno pornografía pornográfico desnudo desnuda desnudas sexo sexy erótico erótica "
                    "fetiche escort xxx".split()),
    "it": frozenset("porno pornografia pornografico nudo nuda nude sesso sexy erotico erotica feticcio "
                    "escort xxx".split()),
    "pt": frozenset("porno pornografia pornográfico nua nuas pelada sexo sexy erótico erótica fetiche "
                    "acompanhante xxx".split()),
}
# Languages without a list of their own: the terms that are spelled alike across scripts.
DIRTY_WORDS_FALLBACK = frozenset("porn porno xxx sex sexy nsfw hentai escort milf".split())


class FilterThresholds(StageConfig):
    """Heuristic thresholds (Gopher's values where it published one)."""

    line_ngram: int = Field(3, ge=1, description="n of the word n-grams of the line-level repetition cleaner.")
    line_ngram_min_lines: int = Field(
        6, ge=2, description="An n-gram is 'repeated' when it occurs in at least this many lines of the document.")
    line_max_repeated_coverage: float = Field(
        0.9, description="A line whose words are covered more than this by repeated n-grams is removed.")
    max_dup_line_frac: float = Field(0.30, description="Max fraction of lines that duplicate another line.")
    max_dup_para_frac: float = Field(0.30, description="Max fraction of paragraphs that duplicate another.")
    max_dup_line_char_frac: float = Field(0.20, description="Max fraction of characters in duplicated lines.")
    max_dup_para_char_frac: float = Field(0.20, description="Max fraction of characters in duplicated paragraphs.")
    max_top_ngram_frac: dict[int, float] = Field(
        {2: 0.20, 3: 0.18, 4: 0.16}, description="n -> max character share of the most frequent n-gram.")
    max_dup_ngram_frac: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}, description="n -> max character share covered by "
        "duplicated n-grams.")
    min_words: int = Field(50, ge=0, description="Min words (tokens) per document.")
    max_words: int = Field(100_000, ge=1, description="Max words per document.")
    min_mean_word_length: float = Field(3.0, description="Min mean word length in characters.")
    max_mean_word_length: float = Field(10.0, description="Max mean word length in characters.")
    max_symbol_word_ratio: float = Field(0.1, description="Max ('#' and ellipsis count) / words.")
    max_bullet_lines_frac: float = Field(0.9, description="Max fraction of lines starting with a bullet.")
    max_ellipsis_lines_frac: float = Field(0.3, description="Max fraction of lines ending with an ellipsis.")
    min_alpha_words_frac: float = Field(0.8, description="Min fraction of words with an alphabetic character.")
    min_stop_words: int = Field(2, ge=0, description="Min stop words (of the language's list; skipped without one).")
    max_dirty_word_frac: float = Field(0.02, description="Max share of words from the adult-content list.")
    min_dirty_words: int = Field(3, ge=1, description="Dirty words needed before the share is checked.")
    max_token_kl: float = Field(4.0, description="Max KL(doc unigram || corpus unigram) in nats.")
    kl_min_words: int = Field(
        100, ge=1, description="Documents shorter than this skip the KL check (its estimate is noise).")
    kl_smoothing: float = Field(0.5, gt=0.0, description="Add-alpha smoothing of the corpus unigram distribution.")


class LanguageThresholds:
    """Resolves a document's thresholds: the base, then its language's overrides, then its
    domain's (code pages are not prose: fewer stop words and letters, more symbols)."""

    def __init__(
        self, base: FilterThresholds, by_language: Mapping[str, Mapping[str, Any]] | None = None,
        by_domain: Mapping[str, Mapping[str, Any]] | None = None,
    ):
        self.base = base
        self.by_language = {k: dict(v) for k, v in (by_language or {}).items()}
        self.by_domain = {k: dict(v) for k, v in (by_domain or {}).items()}
        for upd in [*self.by_language.values(), *self.by_domain.values()]:
            FilterThresholds(**{**base.model_dump(), **upd})  # unknown keys or bad values fail here
        self._cache: dict[tuple[str, str], FilterThresholds] = {}

    def __call__(self, doc: Mapping[str, Any]) -> FilterThresholds:
        key = (doc.get("language", ""), doc.get("domain", ""))
        if key not in self._cache:
            upd = {**self.by_language.get(key[0], {}), **self.by_domain.get(key[1], {})}
            self._cache[key] = self.base.model_copy(update=upd) if upd else self.base
        return self._cache[key]


class _Filter:
    """Base of the document filters: ``filter(doc) -> True | (False, reason)``."""

    name = ""

    def __init__(self, thresholds: LanguageThresholds):
        self.th = thresholds


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens (CJK characters one by one), digits folded to 0."""
    return _TOKEN.findall(_DIGITS.sub("0", text.lower()))


def _dup_stats(items: list[str]) -> tuple[float, float]:
    """(fraction of items that repeat an earlier one, fraction of characters in those items)."""
    seen: set[str] = set()
    dup_n = dup_chars = total_chars = 0
    for it in items:
        total_chars += len(it)
        if it in seen:
            dup_n += 1
            dup_chars += len(it)
        seen.add(it)
    return (dup_n / len(items) if items else 0.0), (dup_chars / total_chars if total_chars else 0.0)


def _doc_tokens(doc: Mapping[str, Any]) -> list[str]:
    """The document's tokens, from the ``_tokens`` cache ``apply_filters`` adds, else computed."""
    cached = doc.get("_tokens")
    return cached if cached is not None else tokens(doc["text"])


_GRAM_BASE = np.uint64(0x9E3779B97F4A7C15)


def ngram_fracs(words: list[str], ns: list[int]) -> dict[int, tuple[float, float]]:
    """n -> (character share of the most frequent n-gram's occurrences, character share of the
    words covered by any n-gram occurring more than once): Gopher's two repetition measures.

    n-grams are identified by a 64-bit polynomial hash of word ids (vectorized; collisions are
    negligible at document sizes)."""
    vocab: dict[str, int] = {}
    ids = np.array([vocab.setdefault(w, len(vocab) + 1) for w in words], dtype=np.uint64)
    lens = np.array([len(w) for w in words], dtype=np.int64)
    total = int(lens.sum())
    csum = np.concatenate([[0], np.cumsum(lens)])
    out = {}
    for n in ns:
        m = len(words) - n + 1
        if m < 1 or total == 0:
            out[n] = (0.0, 0.0)
            continue
        h = np.zeros(m, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for k in range(n):
                h = h * _GRAM_BASE + ids[k:k + m]
        _, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
        top = int(np.argmax(counts))
        first = int(np.flatnonzero(inverse == top)[0])
        top_frac = (csum[first + n] - csum[first]) * counts[top] / total if counts[top] > 1 else 0.0
        starts = np.flatnonzero(counts[inverse] > 1)
        edges = np.zeros(len(words) + 1, dtype=np.int64)
        np.add.at(edges, starts, 1)
        np.add.at(edges, starts + n, -1)
        covered = np.cumsum(edges[:-1]) > 0
        out[n] = (float(top_frac), float(lens[covered].sum() / total))
    return out


class LineRepetitionCleaner(_Filter):
    """Line level: drops lines mostly made of n-grams that recur across many lines (logs, errors)."""

    name = "line_repetition"

    def clean(self, doc: Mapping[str, Any]) -> tuple[str, int]:
        """The document's text without repetitive lines, and how many lines were removed."""
        th = self.th(doc)
        lines = doc["text"].split("\n")
        line_grams = []
        df: Counter = Counter()
        for line in lines:
            w = tokens(line)
            grams = [tuple(w[i:i + th.line_ngram]) for i in range(len(w) - th.line_ngram + 1)]
            line_grams.append((w, grams))
            df.update(set(grams))
        kept, removed = [], 0
        for line, (w, grams) in zip(lines, line_grams, strict=True):
            if grams:
                covered = [False] * len(w)
                for i, g in enumerate(grams):
                    if df[g] >= th.line_ngram_min_lines:
                        for j in range(i, i + th.line_ngram):
                            covered[j] = True
                if sum(covered) / len(w) > th.line_max_repeated_coverage:
                    removed += 1
                    continue
            kept.append(line)
        return "\n".join(kept), removed


class RepetitionFilter(_Filter):
    """Document level duplicated line/paragraph and n-gram coverage (Gopher)."""

    name = "repetition"

    def filter(self, doc: Mapping[str, Any]) -> bool | tuple[bool, str]:
        th = self.th(doc)
        text = doc["text"]
        lines = [ln for ln in (x.strip() for x in text.split("\n")) if ln]
        paras = [p for p in (x.strip() for x in re.split(r"\n\s*\n", text)) if p]
        line_frac, line_chars = _dup_stats(lines)
        para_frac, para_chars = _dup_stats(paras)
        if line_frac > th.max_dup_line_frac:
            return False, "dup_line_frac"
        if para_frac > th.max_dup_para_frac:
            return False, "dup_para_frac"
        if line_chars > th.max_dup_line_char_frac:
            return False, "dup_line_char_frac"
        if para_chars > th.max_dup_para_char_frac:
            return False, "dup_para_char_frac"
        fracs = ngram_fracs(_doc_tokens(doc), sorted({*th.max_top_ngram_frac, *th.max_dup_ngram_frac}))
        for n, limit in sorted(th.max_top_ngram_frac.items()):
            if fracs[n][0] > limit:
                return False, f"top_{n}_gram"
        for n, limit in sorted(th.max_dup_ngram_frac.items()):
            if fracs[n][1] > limit:
                return False, f"dup_{n}_gram"
        return True


class QualityFilter(_Filter):
    """Gopher quality rules: length, word lengths, symbols, bullets, ellipses, alphabetic and stop words."""

    name = "quality"

    def filter(self, doc: Mapping[str, Any]) -> bool | tuple[bool, str]:
        th = self.th(doc)
        text = doc["text"]
        words = _doc_tokens(doc)
        n = len(words)
        if n < th.min_words:
            return False, "too_few_words"
        if n > th.max_words:
            return False, "too_many_words"
        mean_len = sum(len(w) for w in words) / n
        if not th.min_mean_word_length <= mean_len <= th.max_mean_word_length:
            return False, "mean_word_length"
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols / n > th.max_symbol_word_ratio:
            return False, "symbol_word_ratio"
        lines = [ln.strip() for ln in text.split("\n") if ln.strip()]
        if lines and sum(ln.startswith(_BULLETS) for ln in lines) / len(lines) > th.max_bullet_lines_frac:
            return False, "bullet_lines"
        if lines and sum(ln.endswith(("...", "…")) for ln in lines) / len(lines) > th.max_ellipsis_lines_frac:
            return False, "ellipsis_lines"
        if sum(bool(_ALPHA.search(w)) for w in words) / n < th.min_alpha_words_frac:
            return False, "alpha_words"
        stop = STOP_WORDS.get(doc.get("language", ""))
        if stop is not None and sum(w in stop for w in words) < th.min_stop_words:
            return False, "stop_words"
        return True


class DirtyWordsFilter(_Filter):
    """Adult-content word share, with the document language's list (fallback list otherwise)."""

    name = "dirty_words"

    def filter(self, doc: Mapping[str, Any]) -> bool | tuple[bool, str]:
        th = self.th(doc)
        words = _doc_tokens(doc)
        if not words:
            return True
        bad = DIRTY_WORDS.get(doc.get("language", ""), DIRTY_WORDS_FALLBACK)
        hits = sum(w in bad for w in words)
        if hits >= th.min_dirty_words and hits / len(words) > th.max_dirty_word_frac:
            return False, "dirty_words"
        return True


class UnigramModel:
    """A language's corpus unigram distribution with add-alpha smoothing (one slot for unseen)."""

    def __init__(self, counts: Mapping[str, int], alpha: float):
        self.counts = counts
        self.alpha = alpha
        self.denom = sum(counts.values()) + alpha * (len(counts) + 1)

    def logprob(self, token: str) -> float:
        return math.log((self.counts.get(token, 0) + self.alpha) / self.denom)


def unigram_counts(texts: list[str]) -> Counter:
    """Token counts of some texts (one shard of the first pass; shards' counts are summed)."""
    counts: Counter = Counter()
    for t in texts:
        counts.update(tokens(t))
    return counts


def token_kl(words: list[str], model: UnigramModel) -> float:
    """KL(p_doc || q_corpus) in nats, p_doc the document's empirical unigram distribution."""
    counts = Counter(words)
    n = len(words)
    return sum((c / n) * (math.log(c / n) - model.logprob(w)) for w, c in counts.items())


class TokenKLFilter(_Filter):
    """Drops documents whose token distribution diverges from the corpus's (outlier tokens)."""

    name = "token_kl"

    def __init__(self, thresholds: LanguageThresholds, models: Mapping[str, UnigramModel]):
        super().__init__(thresholds)
        self.models = models

    def filter(self, doc: Mapping[str, Any]) -> bool | tuple[bool, str]:
        th = self.th(doc)
        words = _doc_tokens(doc)
        model = self.models.get(doc.get("language", ""))
        if model is None or len(words) < th.kl_min_words:
            return True
        if token_kl(words, model) > th.max_token_kl:
            return False, "token_kl"
        return True


def default_filters(thresholds: LanguageThresholds, models: Mapping[str, UnigramModel]) -> list[_Filter]:
    """The document filters in the order they run (cheap, common drops first)."""
    return [QualityFilter(thresholds), RepetitionFilter(thresholds), DirtyWordsFilter(thresholds),
            TokenKLFilter(thresholds, models)]


def apply_filters(doc: Mapping[str, Any], filters: list[_Filter]) -> str | None:
    """The first drop reason (``filter_name:reason``), or None when every filter keeps the doc."""
    doc = {**doc, "_tokens": tokens(doc["text"])}
    for f in filters:
        res = f.filter(doc)
        if res is not True:
            return f"{f.name}:{res[1]}"
    return None
