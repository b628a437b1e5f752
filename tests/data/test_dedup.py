"""Document MinHash dedup and CCNet line dedup on tiny tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factory.core.stage import StageContext
from factory.data.dedup import DedupConfig, dedup_frame, lsh_params, normalize_line, run_deduped_docs
from factory.data.documents import doc_parts, read_docs, write_docs

_WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
          "upsilon phi chi psi omega river mountain forest ocean desert valley canyon island").split()


def _text(seed: int, n: int = 150) -> str:
    rng = np.random.default_rng(seed)
    return " ".join(rng.choice(_WORDS, n))


def _docs(texts: list[str], **extra) -> pd.DataFrame:
    n = len(texts)
    return pd.DataFrame({
        "id": [f"d{i}" for i in range(n)], "url": [f"https://x/{i}" for i in range(n)],
        "date": ["2026-01-01"] * n, "source": ["test"] * n, "title": [f"t{i}" for i in range(n)],
        "text": texts, "n_code_blocks": [0] * n, "n_math": [0] * n, "page_domain": ["general"] * n,
        "language": ["en"] * n, "language_score": [1.0] * n, **extra,
    })


def _cfg(**kw) -> DedupConfig:
    return DedupConfig(**{"line_bucket_docs": 100, **kw})


def test_planted_near_duplicate_is_removed_and_longest_kept():
    base = [_text(i) for i in range(6)]
    words = base[2].split()
    words[10] = "changed"
    near = " ".join(words) + " extra tail words"  # a one-word edit plus a longer tail
    out, meta = dedup_frame(_docs(base + [near]), _cfg())
    assert meta["docs_removed_near_dup"] == 1 and meta["near_dup_clusters"] == 1
    assert "d2" not in set(out["id"]) and "d6" in set(out["id"])  # the more complete copy stays
    assert len(out) == 6


def test_distinct_documents_survive_across_shards():
    out, meta = dedup_frame(_docs([_text(i) for i in range(8)]), _cfg(), num_parts=3)
    assert meta["docs_removed_near_dup"] == 0 and len(out) == 8


def test_near_duplicates_only_within_a_language():
    t = _text(1)
    out, meta = dedup_frame(_docs([t, t], language=["en", "de"]), _cfg())
    assert meta["docs_removed_near_dup"] == 0 and meta["per_language"] and meta["languages"] == 2
    _, meta = dedup_frame(_docs([t, t], language=["en", "de"]), _cfg(per_language=False))
    assert meta["docs_removed_near_dup"] == 1
    out, meta = dedup_frame(_docs([t, t], language=["en", "en"]), _cfg())
    assert meta["docs_removed_near_dup"] == 1


@pytest.mark.parametrize("repeats,removed", [(6, False), (7, True)])
def test_line_repeated_more_than_six_times_in_a_bucket_is_removed(repeats, removed):
    line = "Subscribe to our newsletter today!"
    texts = [f"{_text(i, 60)}\n{line if i < repeats else 'unique line ' + str(i)}" for i in range(8)]
    out, meta = dedup_frame(_docs(texts), _cfg())
    has_line = out["text"].str.contains("newsletter").sum()
    assert has_line == (0 if removed else repeats)
    assert meta["lines_removed"] == (repeats if removed else 0)


def test_line_counts_are_per_bucket_and_normalized():
    # Variants that normalize alike ("Page 1 of 9!" ~ "page 2 of 3") count as one line.
    texts = [f"{_text(i, 60)}\nPage {i} of {i + 2}!" for i in range(8)]
    assert normalize_line("Page 1 of 9!") == normalize_line("page 2 of 3") == "page 0 of 0"
    _, meta = dedup_frame(_docs(texts), _cfg(line_bucket_docs=100))
    assert meta["lines_removed"] == 8
    _, meta = dedup_frame(_docs(texts), _cfg(line_bucket_docs=4))  # 2 buckets of 4: none > 6
    assert meta["lines_removed"] == 0 and meta["line_buckets"] == 2


def test_document_emptied_by_line_dedup_is_dropped():
    texts = [_text(i, 60) + "\nrepeated boilerplate line" for i in range(7)] + ["repeated boilerplate line"]
    out, meta = dedup_frame(_docs(texts), _cfg())
    assert meta["docs_removed_empty_after_line_dedup"] == 1 and len(out) == 7


def test_lsh_params_from_threshold_or_explicit():
    assert lsh_params(DedupConfig(bands=16, rows=8)) == (16, 8)
    b, r = lsh_params(DedupConfig(threshold=0.8, num_perm=128))
    assert b * r <= 128 and b > 1
    with pytest.raises(ValueError):
        lsh_params(DedupConfig(bands=20, rows=8))


def test_stage_writes_same_columns(tmp_path):
    src = tmp_path / "in"
    write_docs(_docs([_text(i) for i in range(4)] + [_text(0)]), src)
    meta = run_deduped_docs(_cfg(), {"extracted_docs": src}, tmp_path / "out", StageContext())
    out = read_docs(tmp_path / "out")
    assert list(out.columns) == list(read_docs(src).columns)
    assert meta["docs_out"] == len(out) == 4


@pytest.mark.slow
def test_ray_executor_writes_the_same_parts_as_local(tmp_path, embedded_ray):
    line = "Subscribe to our newsletter today!"
    base = [f"{_text(i)}\n{line}" for i in range(12)]
    near = base[3].replace("alpha", "changed", 1) + " extra tail words"
    src = tmp_path / "in"
    write_docs(_docs(base + [near, base[5]], language=["en"] * 10 + ["de"] * 2 + ["en"] * 2), src, num_parts=3)
    meta = {ex: run_deduped_docs(_cfg(executor=ex), {"extracted_docs": src}, tmp_path / ex, StageContext())
            for ex in ("local", "ray")}
    # Ray Data may read several small parts in one task (fewer, larger output parts): the documents
    # are the same, the parts are numbered from 0 by their smallest id either way.
    for ex in meta:
        assert [p.name for p in doc_parts(tmp_path / ex)] == [f"part-{k:05d}.parquet"
                                                             for k in range(len(doc_parts(tmp_path / ex)))]
    local, ray = (read_docs(tmp_path / ex).sort_values("id").reset_index(drop=True) for ex in ("local", "ray"))
    pd.testing.assert_frame_equal(local, ray, check_dtype=False)  # Ray writes strings as large_string
    assert len(local) == meta["local"]["docs_out"] == 12 and "d3" not in set(local["id"])
    # 9 "en" copies of the line go (the near-duplicate's copy carries its extra tail), the 2 "de" stay.
    assert meta["local"]["lines_removed"] == meta["ray"]["lines_removed"] == 9
    assert {k: v for k, v in meta["local"].items() if k not in ("steps", "docs_per_s")} == {
        k: v for k, v in meta["ray"].items() if k not in ("steps", "docs_per_s")}
