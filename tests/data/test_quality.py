"""Quality scores: heuristic score, fastText reference classifier, MiniLM head on teacher labels."""

from __future__ import annotations

import random
from urllib.parse import urlparse

import numpy as np
import pytest
from test_filters import PROSE

from factory.config import load_profile
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
from factory.data.sample_crawl import CPYTHON_URL, DEBIAN_REFERENCE_URL, PYTHON_DOCS_URL
from factory.stages import stage_config, stage_specs

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
    texts, labels, counts = quality_training_set(kept, ["docs.python.org", "blog", "blog"], [1.0, 0.9, 0.1],
                                                 ["junk page"], CFG.model_copy(update={"min_positives": 2}))
    assert counts["positives"] == 2  # the reference doc + the best heuristic score
    assert counts["positive_pool_reference_sources"] == counts["positive_pool_top_heuristic"] == 1
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
    labels = ["py" if s == "docs.python.org" else "other" for s in df["source"]]
    first = train_fasttext(texts, labels, tmp_path / "a.bin", CFG).read_bytes()
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        embed(texts[:16], 64, 16)
    finally:
        torch.set_num_threads(threads)
    assert train_fasttext(texts, labels, tmp_path / "b.bin", CFG).read_bytes() == first


def test_configured_reference_sources_absent_from_the_corpus_are_an_error():
    with pytest.raises(ValueError, match=r"no kept document comes from any of them.*blog \(2\)"):
        quality_training_set([PROSE, PROSE + " more"], ["blog", "blog"], [1.0, 0.9], [], CFG)
    # An empty list asks for heuristic positives only.
    _, _, counts = quality_training_set([PROSE, PROSE + " more"], ["blog", "blog"], [1.0, 0.9], [],
                                        CFG.model_copy(update={"reference_sources": [], "min_positives": 1}))
    assert counts["positive_pool_top_heuristic"] == 1


@pytest.mark.parametrize("profile", ["demo", "smoke", "cluster-local"])
def test_the_profiles_reference_sources_are_hosts_of_the_embedded_crawl(profile):
    hosts = {urlparse(u).hostname for u in (PYTHON_DOCS_URL, DEBIAN_REFERENCE_URL, CPYTHON_URL)}
    loaded = load_profile(profile)
    spec = next(s for s in stage_specs(loaded) if s.asset == "filtered_corpus")
    cfg = stage_config(spec, loaded)
    assert cfg.quality.reference_sources and set(cfg.quality.reference_sources) <= hosts
