"""Quality scores: heuristic score, fastText reference classifier, MiniLM head on teacher labels."""

from __future__ import annotations

import random

import numpy as np
import pytest
from test_filters import PROSE

from factory.data.quality import (
    QualityConfig,
    degrade,
    embed,
    fasttext_probs,
    fit_head,
    head_scores,
    heuristic_score,
    quality_training_set,
    train_fasttext,
)

CFG = QualityConfig(heuristic_min_words=50)


def _reference_docs():
    from factory.bench.dedup import reference_corpus

    try:
        df = reference_corpus(120)
    except FileNotFoundError:
        pytest.skip("Debian documentation packages are not installed")
    return df[df["source"] != "python_source"]


def test_heuristic_score_orders_prose_above_junk():
    junk = degrade(PROSE, random.Random(0))
    assert 0.0 <= heuristic_score(junk, "en", CFG) < heuristic_score(PROSE, "en", CFG) == 1.0
    assert heuristic_score("", "en", CFG) == 0.0


def test_training_set_labels_reference_sources_and_negatives():
    kept = [PROSE, PROSE + " more", "short"]
    texts, labels, counts = quality_training_set(kept, ["python_docs", "blog", "blog"], [1.0, 0.9, 0.1], ["junk page"],
                                                 CFG.model_copy(update={"min_positives": 2}))
    assert counts["positives_reference_or_top_heuristic"] == 2  # the reference doc + the best heuristic score
    assert counts["negatives_dropped_by_filters"] == 1 and counts["negatives_synthetic_degraded"] == 2
    assert labels.count("hq") == 2 and "short" not in texts


@pytest.mark.slow
def test_fasttext_scores_in_range_and_ordered(tmp_path):
    df = _reference_docs()
    train, held = df.iloc[:80], df.iloc[80:]
    texts, labels, _ = quality_training_set(train["text"].tolist(), train["source"].tolist(), [1.0] * len(train), [],
                                            CFG)
    path = train_fasttext(texts, labels, tmp_path / "q.bin", CFG)
    good = fasttext_probs(path, held["text"].tolist(), CFG.fasttext_max_chars)["hq"]
    rng = random.Random(1)
    bad = fasttext_probs(path, [degrade(t, rng) for t in held["text"]], CFG.fasttext_max_chars)["hq"]
    assert np.all((good >= 0) & (good <= 1)) and np.all((bad >= 0) & (bad <= 1))
    assert good.mean() > 0.8 > 0.2 > bad.mean()


def test_head_fits_soft_teacher_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    teacher = 1 / (1 + np.exp(-3 * x[:, 0]))
    head = fit_head(x, teacher, CFG)
    s = head_scores(head, x)
    assert np.all((s > 0) & (s < 1))
    assert np.corrcoef(s, teacher)[0, 1] > 0.95


@pytest.mark.slow
def test_minilm_head_orders_clear_cases():
    df = _reference_docs()
    rng = random.Random(0)
    good = df["text"].tolist()[:40]
    bad = [degrade(t, rng) for t in good]
    x = embed(good + bad, 128, 16)
    assert x.shape == (80, 384) and np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
    teacher = np.array([0.9] * 40 + [0.1] * 40)
    head = fit_head(x[::2], teacher[::2], CFG)  # fit on half, score the other half
    s = head_scores(head, x[1::2])
    assert s[:20].mean() > 0.5 > s[20:].mean()


def test_fasttext_training_is_reproducible_after_the_encoder_ran(tmp_path):
    """In-process fastText training gave a different model (or a NaN loss) once the MiniLM encoder
    had run on 2 torch threads in the same process; training in a fresh interpreter gives the same
    bytes."""
    import torch

    df = _reference_docs()
    texts = df["text"].tolist()
    labels = ["py" if s == "python_docs" else "other" for s in df["source"]]
    first = train_fasttext(texts, labels, tmp_path / "a.bin", CFG).read_bytes()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        embed(texts[:16], 64, 16)
    finally:
        torch.set_num_threads(threads)
    assert train_fasttext(texts, labels, tmp_path / "b.bin", CFG).read_bytes() == first
