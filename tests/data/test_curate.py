"""The filtered_corpus stage end to end on a small real corpus (MiniLM makes it slow here), and
how it streams: the fits' bounded sample, nothing but small columns and that sample on the driver."""

from __future__ import annotations

import random

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from factory.core.stage import StageContext
from factory.data import curate, documents
from factory.data.curate import (
    ADDED_COLUMNS,
    CLASSIFIERS_FILE,
    DROPPED_FILE,
    FilterConfig,
    fit_sample,
    run_filtered_corpus,
)
from factory.data.documents import DOC_COLUMNS, read_docs, write_docs
from factory.data.quality import QualityConfig, degrade


def _corpus(n: int) -> pd.DataFrame:
    from factory.bench.dedup import reference_corpus

    try:
        df = reference_corpus(n)
    except FileNotFoundError:
        pytest.skip("Debian documentation packages are not installed")
    rng = random.Random(0)
    junk = df.iloc[:6].copy()
    junk["id"] = [f"junk{i}" for i in range(6)]
    junk["source"] = "spam_site"
    junk["text"] = [degrade(t, rng) for t in junk["text"]]
    junk["n_code_blocks"] = 0
    return pd.concat([df, junk], ignore_index=True)


def _cfg(**kw) -> FilterConfig:
    q = QualityConfig(encoder_max_tokens=64, head_train_docs=64, max_train_docs=200)
    return FilterConfig(**{"quality": q, **kw})


def _docs(n: int) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"d{i:03d}" for i in range(n)], "url": "u", "date": "d", "source": "s", "title": "t",
                         "text": [f"text {i}" for i in range(n)], "n_code_blocks": 0, "n_math": 0,
                         "page_domain": "general", "language": "en", "language_score": 1.0})


def test_fit_sample_is_capped_seeded_and_independent_of_the_parts(tmp_path):
    df = _docs(50)
    ids = {}
    for num_parts in (1, 4):
        parts = write_docs(df, tmp_path / str(num_parts), num_parts)
        cutoff, rows = fit_sample(parts, len(df), _cfg(sample_docs=20), StageContext())
        assert cutoff is not None and len(rows) == 20
        assert list(rows["id"]) == [i for i in df["id"] if i in set(rows["id"])]  # input order
        ids[num_parts] = set(rows["id"])
    assert ids[1] == ids[4]
    parts = write_docs(df, tmp_path / "again", 2)
    assert set(fit_sample(parts, len(df), _cfg(sample_docs=20, sample_seed=1), StageContext())[1]["id"]) != ids[1]
    cutoff, rows = fit_sample(parts, len(df), _cfg(sample_docs=50), StageContext())
    assert cutoff is None and list(rows["id"]) == list(df["id"])  # a cap above the corpus: every document


@pytest.mark.slow
def test_filtered_corpus_local(tmp_path):
    src = tmp_path / "in"
    write_docs(_corpus(60), src)
    meta = run_filtered_corpus(_cfg(), {"deduped_docs": src}, tmp_path / "out", StageContext())
    docs = read_docs(tmp_path / "out")
    assert list(docs.columns) == [*DOC_COLUMNS, *ADDED_COLUMNS]
    assert meta["docs_out"] == len(docs) and 0 < len(docs) < meta["docs_in"] == meta["sampled_docs"] == 66
    assert docs["quality_fasttext"].between(0, 1).all() and docs["quality_transformer"].between(0, 1).all()
    assert set(docs["domain"]) <= {"general", "code", "math"} and "code" in set(docs["domain"])
    assert {"en", "de"} <= set(docs["language"]) and docs["language_score"].between(0, 1).all()
    assert not docs["id"].str.startswith("junk").any()  # the degraded pages go
    dropped = pd.read_parquet(tmp_path / "out" / DROPPED_FILE)
    assert sum(n for r in meta["dropped_by_reason"].values() for n in r.values()) == meta["docs_in"] - meta["docs_out"]
    assert set(dropped["drop_reason"]) and dropped.groupby("drop_reason").size().max() <= 5
    assert sum(meta["per_topic"].values()) == sum(meta["per_domain"].values()) == len(docs)
    assert set(meta["steps"]) >= {"heuristics", "quality_transformer", "topics"} and meta["docs_per_s"] > 0
    heuristics = meta["steps"]["heuristics"]["counts"]
    assert heuristics["kept"] + heuristics["dropped"] == meta["docs_in"]
    clf = np.load(tmp_path / "out" / CLASSIFIERS_FILE)
    assert clf["quality_head_w"].shape == (384,) and clf["topic_centroids"].shape[1] == 384


@pytest.mark.slow
def test_filtered_corpus_streams_under_ray_and_matches_local(tmp_path, embedded_ray, monkeypatch):
    """Under Ray no document table passes through the driver: no read_docs/write_docs or pandas
    parquet reads there, the only texts collected are the fits' sample (at most sample_docs) and
    the audit's first documents per reason and part; the functions shipped to Ray carry no data.
    The kept documents and the audit equal local's."""
    src = tmp_path / "in"
    parts = write_docs(_corpus(30), src, num_parts=3)
    cfg = _cfg(sample_docs=24)
    meta_l = run_filtered_corpus(cfg, {"deduped_docs": src}, tmp_path / "local", StageContext())

    def refuse(*args, **kwargs):
        raise AssertionError("a whole document table on the driver")

    shipped, collected = [], []
    real_collect, real_map = curate.collect_parts, curate.map_parts

    def collect(fn, *args, **kwargs):
        shipped.append(len(cloudpickle.dumps(fn)))
        rows = real_collect(fn, *args, **kwargs)
        collected.append((getattr(fn, "func", fn).__name__, rows))
        return rows

    def map_(fn, *args, **kwargs):
        shipped.append(len(cloudpickle.dumps(fn)))
        return real_map(fn, *args, **kwargs)

    for name in ("read_docs", "write_docs"):
        monkeypatch.setattr(documents, name, refuse)
        monkeypatch.setattr(curate, name, refuse, raising=False)
    monkeypatch.setattr(pd, "read_parquet", refuse)  # the driver reads no rows; Ray's workers are other processes
    monkeypatch.setattr(curate, "collect_parts", collect)
    monkeypatch.setattr(curate, "map_parts", map_)
    meta_r = run_filtered_corpus(cfg.model_copy(update={"executor": "ray"}), {"deduped_docs": src}, tmp_path / "ray",
                                 StageContext())
    monkeypatch.undo()

    assert meta_r["docs_in"] == 36 and meta_r["sampled_docs"] == meta_l["sampled_docs"] == 24
    assert max(shipped) < 20_000  # the config and model paths, never documents
    for name, rows in collected:
        if "text" not in rows.columns:
            continue
        if name == "_audit_part":
            assert rows.groupby("drop_reason").size().max() <= cfg.dropped_samples_per_reason * len(parts)
            assert rows["text"].str.len().max() <= cfg.dropped_sample_chars
        else:
            assert name == "_sample_part" and len(rows) <= cfg.sample_docs
    assert {name for name, _ in collected} >= {"_sample_part", "_audit_part", "_judged_columns"}

    a, b = (read_docs(tmp_path / ex).sort_values("id").reset_index(drop=True) for ex in ("local", "ray"))
    for key in ("docs_out", "dropped_by_reason", "per_language", "per_domain", "per_topic", "router_trained"):
        assert meta_l[key] == meta_r[key], key
    assert a["id"].tolist() == b["id"].tolist() and a["text"].tolist() == b["text"].tolist()
    assert a["topic"].tolist() == b["topic"].tolist() and np.allclose(a["quality_fasttext"], b["quality_fasttext"])
    # encoder threads differ in Ray workers
    assert np.allclose(a["quality_transformer"], b["quality_transformer"], atol=2e-3)
    audit_l, audit_r = (pd.read_parquet(tmp_path / ex / DROPPED_FILE).astype(str) for ex in ("local", "ray"))
    pd.testing.assert_frame_equal(audit_l, audit_r)
