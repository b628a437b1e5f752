"""The filtered_corpus stage end to end on a small real corpus (MiniLM makes it slow here)."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from factory.core.stage import StageContext
from factory.data.curate import ADDED_COLUMNS, CLASSIFIERS_FILE, DROPPED_FILE, FilterConfig, run_filtered_corpus
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
    return FilterConfig(**{"num_shards": 2, "quality": q, **kw})


@pytest.mark.slow
def test_filtered_corpus_local(tmp_path):
    src = tmp_path / "in"
    write_docs(_corpus(60), src)
    meta = run_filtered_corpus(_cfg(), {"deduped_docs": src}, tmp_path / "out", StageContext())
    docs = read_docs(tmp_path / "out")
    assert list(docs.columns) == [*DOC_COLUMNS, *ADDED_COLUMNS]
    assert meta["docs_out"] == len(docs) and 0 < len(docs) < meta["docs_in"] == 66
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
def test_filtered_corpus_ray_matches_local(tmp_path, embedded_ray):
    src = tmp_path / "in"
    write_docs(_corpus(30), src)
    meta_l = run_filtered_corpus(_cfg(), {"deduped_docs": src}, tmp_path / "local", StageContext())
    meta_r = run_filtered_corpus(_cfg(executor="ray"), {"deduped_docs": src}, tmp_path / "ray", StageContext())
    a, b = read_docs(tmp_path / "local"), read_docs(tmp_path / "ray")
    assert meta_l["dropped_by_reason"] == meta_r["dropped_by_reason"]
    assert a["id"].tolist() == b["id"].tolist() and a["language"].tolist() == b["language"].tolist()
    # encoder threads differ in Ray workers
    assert np.allclose(a["quality_transformer"], b["quality_transformer"], atol=2e-3)
