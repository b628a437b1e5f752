"""The parquet-part layout of document tables: names follow content, reruns write the same bytes,
both executors keep the parts' order."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from factory.data.documents import DOCS_DIR, collect_parts, doc_parts, map_parts, read_docs, write_docs


def _docs(ids: list[str]) -> pd.DataFrame:
    n = len(ids)
    return pd.DataFrame({"id": ids, "url": [f"https://x/{i}" for i in ids], "date": ["2026-01-01"] * n,
                         "source": ["x"] * n, "title": ids, "text": [f"text of {i}" for i in ids],
                         "n_code_blocks": [0] * n, "n_math": [0] * n, "page_domain": ["general"] * n,
                         "language": ["en"] * n, "language_score": [1.0] * n})


def _digests(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in doc_parts(folder)}


def test_parts_are_numbered_by_their_smallest_id(tmp_path):
    df = _docs(["m1", "m2", "a1", "a2", "z1", "b1"])  # contiguous thirds: (m1, m2), (a1, a2), (z1, b1)
    parts = write_docs(df, tmp_path, num_parts=3)
    assert [p.name for p in parts] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    assert [pd.read_parquet(p)["id"].tolist() for p in parts] == [["a1", "a2"], ["z1", "b1"], ["m1", "m2"]]
    # The folder reads as one table in part order, as downstream readers read it.
    assert pd.read_parquet(tmp_path / DOCS_DIR)["id"].tolist() == ["a1", "a2", "z1", "b1", "m1", "m2"]
    assert read_docs(tmp_path)["id"].tolist() == ["a1", "a2", "z1", "b1", "m1", "m2"]


def test_local_part_map_drops_empty_parts_and_reruns_write_identical_files(tmp_path):
    parts = write_docs(_docs(["c1", "c2", "a1", "a2", "b1", "b2"]), tmp_path / "in", num_parts=3)

    def drop_a(part: pd.DataFrame) -> pd.DataFrame:
        return part[~part["id"].str.startswith("a")]

    for out in ("one", "two"):
        map_parts(drop_a, parts, tmp_path / out, "local")
    assert list(_digests(tmp_path / "one")) == ["part-00000.parquet", "part-00001.parquet"]
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    assert read_docs(tmp_path / "one")["id"].tolist() == ["b1", "b2", "c1", "c2"]
    assert not (tmp_path / "one" / f".{DOCS_DIR}.staging").exists()


def test_part_map_replaces_the_parts_an_earlier_run_left(tmp_path):
    """A stage's work folder is reused: a map writing fewer parts must not leave the old ones beside them."""
    parts = write_docs(_docs(["a1", "a2", "b1", "b2"]), tmp_path / "in", num_parts=2)
    map_parts(lambda part: part, parts, tmp_path / "work", "local")
    map_parts(lambda part: part[part["id"].str.startswith("a")], parts, tmp_path / "work", "local")
    assert read_docs(tmp_path / "work")["id"].tolist() == ["a1", "a2"]


@pytest.mark.slow
def test_ray_pipelines_keep_the_parts_order(tmp_path, embedded_ray):
    """Ray Data groups small parts into one write as their blocks finish unless told to keep their
    order: rows come back, and are written, in the parts' order as the local executor has them."""
    ids = [f"{k:03d}" for k in np.random.default_rng(0).permutation(60)]
    parts = write_docs(_docs(ids), tmp_path / "in", num_parts=6)
    local = [i for p in parts for i in pd.read_parquet(p)["id"]]
    assert collect_parts(lambda part: part, parts, "ray", columns=["id"])["id"].tolist() == local
    written = map_parts(lambda part: part, parts, tmp_path / "out", "ray")
    assert [i for p in written for i in pd.read_parquet(p)["id"]] == local
