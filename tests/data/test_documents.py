"""The parquet-part layout of document tables: names follow content, reruns write the same bytes."""

from __future__ import annotations

import hashlib

import pandas as pd

from factory.data.documents import DOCS_DIR, doc_parts, map_parts, read_docs, write_docs


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
