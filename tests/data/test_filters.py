"""Each heuristic filter keeps a clean document and drops a bad one with its reason."""

from __future__ import annotations

import numpy as np
import pytest

from factory.data.filters import (
    DirtyWordsFilter,
    FilterThresholds,
    LanguageThresholds,
    LineRepetitionCleaner,
    QualityFilter,
    RepetitionFilter,
    TokenKLFilter,
    UnigramModel,
    apply_filters,
    default_filters,
    ngram_fracs,
    token_kl,
    tokens,
    unigram_counts,
)

PROSE = (
    "The river flows through the valley and feeds the farms that line its banks. In spring the water "
    "rises with melting snow, and farmers open the old channels to irrigate their fields. By summer the "
    "flow slows, so the village council decides how much water each farm may take. These rules are old "
    "and have been written down for generations. Children learn them at school, and disputes are settled "
    "at the market square on the first day of each month. Visitors often remark that the system works "
    "because everyone can see the channels and knows who opened which gate. The valley has changed with "
    "new roads and a small railway, yet the water rules remain the heart of local life."
)
TH = LanguageThresholds(FilterThresholds())


def _doc(text: str, language: str = "en", domain: str = "general") -> dict:
    return {"text": text, "language": language, "domain": domain}


def test_clean_prose_passes_every_filter():
    models = {"en": UnigramModel(unigram_counts([PROSE] * 3), 0.5)}
    assert apply_filters(_doc(PROSE), default_filters(TH, models)) is None


@pytest.mark.parametrize("text,reason", [
    ("too short to count", "too_few_words"),
    (" ".join(["x"] * 60), "mean_word_length"),
    (PROSE + " #tag" * 40, "symbol_word_ratio"),
    (" ".join(f"item {w} here" for w in PROSE.split()[:60]
              if w not in ("the", "and", "to", "of", "that", "with", "have", "be")), "stop_words"),
    ("\n".join(["Read more about this..."] * 20 + [PROSE]), "ellipsis_lines"),
    (" ".join(f"{i:05d} 12345 67890 word" for i in range(40)), "alpha_words"),
])
def test_quality_filter_reasons(text, reason):
    assert QualityFilter(TH).filter(_doc(text)) == (False, reason)


def test_quality_thresholds_per_language_and_domain():
    th = LanguageThresholds(FilterThresholds(), {"de": {"min_stop_words": 0}},
                            {"code": {"min_words": 1, "min_stop_words": 0}})
    no_stop = " ".join(["Wasser Fluss Dorf Feld Tal Bauern Regeln Markt"] * 10)
    assert QualityFilter(TH).filter(_doc(no_stop, "de")) == (False, "stop_words")
    assert QualityFilter(th).filter(_doc(no_stop, "de")) is True
    assert QualityFilter(th).filter(_doc("print(x)", domain="code")) is True
    with pytest.raises(ValueError):
        LanguageThresholds(FilterThresholds(), {"de": {"no_such_threshold": 1}})


def test_repetition_filter_line_and_ngram_reasons():
    assert RepetitionFilter(TH).filter(_doc(PROSE)) is True
    lines = PROSE.split(". ")
    assert RepetitionFilter(TH).filter(_doc("\n".join(lines + lines[:4]))) == (False, "dup_line_frac")
    repeated = PROSE + " " + " ".join(PROSE.split()[:40]) * 1
    assert RepetitionFilter(TH).filter(_doc(repeated))[1].startswith(("dup_", "top_"))


def test_ngram_fracs_measures():
    words = "a b c a b c a b c".split()
    top, dup = ngram_fracs(words, [3])[3]
    assert top == pytest.approx(3 * 3 / 9) and dup == pytest.approx(1.0)
    assert ngram_fracs("a b c d e f".split(), [2])[2] == (0.0, 0.0)


def test_dirty_words_per_language_and_fallback():
    spam = PROSE + " porn xxx porn nude sex " * 3
    assert DirtyWordsFilter(TH).filter(_doc(spam)) == (False, "dirty_words")
    assert DirtyWordsFilter(TH).filter(_doc(PROSE)) is True
    assert DirtyWordsFilter(TH).filter(_doc(PROSE + " sesso nudo porno " * 3, "it")) == (False, "dirty_words")
    assert DirtyWordsFilter(TH).filter(_doc(PROSE + " porno xxx sex " * 3, "nl")) == (False, "dirty_words")
    # Two mentions in a long text stay under the count and share thresholds.
    assert DirtyWordsFilter(TH).filter(_doc(PROSE + " sex education")) is True


def test_token_kl_flags_outlier_tokens():
    # A corpus of ~23k tokens: unseen tokens get (smoothed) probability ~2e-5.
    model = UnigramModel(unigram_counts([PROSE] * 200), 0.5)
    rng = np.random.default_rng(0)
    junk = " ".join("".join(rng.choice(list("abcdef0123456789"), 12)) for _ in range(150))
    assert token_kl(tokens(PROSE), model) < token_kl(tokens(junk), model)
    f = TokenKLFilter(TH, {"en": model})
    assert f.filter(_doc(PROSE)) is True
    assert f.filter(_doc(junk)) == (False, "token_kl")
    assert f.filter(_doc(junk, "fr")) is True  # no corpus distribution for the language


def test_line_repetition_cleaner_removes_log_lines_only():
    logs = [f"2024-01-0{i % 9 + 1} 12:00:0{i % 10} ERROR connection to database refused, retrying" for i in range(8)]
    text = PROSE + "\n" + "\n".join(logs) + "\nThe end of the story is near."
    cleaned, removed = LineRepetitionCleaner(TH).clean(_doc(text))
    assert removed == 8 and "ERROR" not in cleaned and cleaned.startswith(PROSE)
    assert LineRepetitionCleaner(TH).clean(_doc(PROSE)) == (PROSE, 0)
