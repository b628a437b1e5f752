"""raw_crawl: the embedded sample crawl of real documents, re-sharding of given WARCs, the inbox."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest

from factory.core.stage import StageContext
from factory.data import sample_crawl
from factory.data.crawl import CrawlConfig, run_raw_crawl
from factory.data.warc import iter_pages, response_record

CTX = StageContext(log=lambda msg: None)
SMALL = {"max_pages_per_source": 3, "languages": ["en", "ja"], "recapture_fraction": 0.5}

needs_docs = pytest.mark.skipif(not sample_crawl.PYTHON_DOCS_DIR.is_dir(), reason="Debian docs not installed")


def _pages(out):
    skipped = Counter()
    pages = [p for shard in sorted((out / "warc").glob("*.warc.gz")) for p in iter_pages(shard, 1 << 24, skipped)]
    return pages, skipped


@needs_docs
def test_sample_crawl_is_real_deterministic_and_has_recaptures(tmp_path):
    cfg = CrawlConfig(**SMALL)
    meta = run_raw_crawl(cfg, {}, tmp_path / "a", CTX)
    run_raw_crawl(cfg, {}, tmp_path / "b", CTX)
    shards_a = sorted((tmp_path / "a" / "warc").iterdir())
    assert [p.read_bytes() for p in shards_a] == [p.read_bytes() for p in sorted((tmp_path / "b" / "warc").iterdir())]

    pages, skipped = _pages(tmp_path / "a")
    assert not skipped and meta["records"] == len(pages)
    # 3 per source, and the first half (int(3 * 0.5) = 1) of each source captured again later
    assert meta["records_by_source"] == {"sample:debian_reference": 4, "sample:python_docs": 4,
                                         "sample:python_source": 4}
    urls = Counter(p.url for p in pages)
    recaptured = [u for u, n in urls.items() if n == 2]
    assert len(recaptured) == 3
    dates = sorted(p.date for p in pages if p.url == recaptured[0])
    assert dates[0] < dates[1]
    assert any(u.startswith("https://docs.python.org/3.11/") for u in urls)
    assert any(u.startswith("https://www.debian.org/doc/manuals/debian-reference/") and u.endswith(".ja.html")
               for u in urls)
    source = next(p for p in pages if p.url.startswith(sample_crawl.CPYTHON_URL))
    assert "<pre><code" in source.html and "import " in source.html
    assert json.loads((tmp_path / "a" / "crawl.json").read_text())["records"] == meta["records"]


def test_missing_debian_docs_name_the_make_target(tmp_path, monkeypatch):
    monkeypatch.setattr(sample_crawl, "PYTHON_DOCS_DIR", tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="make system-deps"):
        run_raw_crawl(CrawlConfig(sample_sources=["python_docs"]), {}, tmp_path / "out", CTX)


def test_given_warcs_and_inbox_are_resharded_with_skips_counted(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    good = [gzip.compress(response_record(f"https://example.org/{i}", "2024-01-01T00:00:00Z", b"<p>hello</p>"))
            for i in range(4)]
    (src / "a.warc.gz").write_bytes(good[0] + good[1] + good[2][:-25])  # last record truncated
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "new.warc.gz").write_bytes(good[3])
    (inbox / "notes.txt").write_text("not a warc")
    cfg = CrawlConfig(warc_paths=[str(src / "*.warc.gz")], inbox=str(inbox), shard_bytes=1)
    meta = run_raw_crawl(cfg, {}, tmp_path / "out", CTX)
    pages, _ = _pages(tmp_path / "out")
    assert [p.url for p in pages] == ["https://example.org/0", "https://example.org/1", "https://example.org/3"]
    assert meta["shards"] == 3  # shard_bytes=1: one record per shard
    assert sum(meta["skipped"].values()) == 1
    assert set(meta["input_files"]) == {str(src / "a.warc.gz"), str(inbox / "new.warc.gz")}


def test_unmatched_warc_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        run_raw_crawl(CrawlConfig(warc_paths=[str(tmp_path / "none-*.warc.gz")]), {}, tmp_path / "out", CTX)
