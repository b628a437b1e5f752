"""WARC reading never fails on bad input: it skips and counts by reason, and decodes charsets."""

from __future__ import annotations

import gzip
from collections import Counter

from factory.data.warc import (
    SKIP_BINARY,
    SKIP_CONTENT_TYPE,
    SKIP_CORRUPT,
    SKIP_OVERSIZE,
    SKIP_STATUS,
    SKIP_TRUNCATED,
    WarcShardWriter,
    iso_date,
    iter_pages,
    iter_records,
    response_record,
)

DATE = "2024-03-01T12:00:00Z"


def _page(i: int, body: bytes | None = None, content_type: str = "text/html; charset=utf-8") -> bytes:
    body = body if body is not None else f"<html><body><p>page {i} café</p></body></html>".encode()
    return response_record(f"https://example.org/{i}", DATE, body, content_type)


def _write(path, members: list[bytes]) -> None:
    path.write_bytes(b"".join(members))


def test_roundtrip_through_shard_writer(tmp_path):
    with WarcShardWriter(tmp_path, shard_bytes=400) as writer:
        for i in range(3):
            writer.write(_page(i))
    assert len(writer.paths) == 3  # each gzip member is ~300 bytes: one record per 400-byte shard
    skipped = Counter()
    pages = [p for path in writer.paths for p in iter_pages(path, 10_000, skipped)]
    assert [p.url for p in pages] == [f"https://example.org/{i}" for i in range(3)]
    assert pages[0].date == "2024-03-01T12:00:00+00:00" and "café" in pages[0].html
    assert not skipped


def test_truncated_gzip_tail_is_counted_not_fatal(tmp_path):
    path = tmp_path / "t.warc.gz"
    data = b"".join(gzip.compress(_page(i)) for i in range(3))
    path.write_bytes(data[:-40])  # cut into the last record's gzip member
    skipped = Counter()
    pages = list(iter_pages(path, 10_000, skipped))
    assert len(pages) == 2
    assert skipped[SKIP_TRUNCATED] + skipped[SKIP_CORRUPT] == 1


def test_garbled_record_is_skipped_and_reading_resumes(tmp_path):
    path = tmp_path / "g.warc.gz"
    garbage = gzip.compress(b"WARC/1.0\r\nGarbage: x\r\n\r\nnot a record")
    broken_gzip = b"\x1f\x8b\x08\x00garbage-bytes"
    _write(path, [gzip.compress(_page(0)), garbage, broken_gzip, gzip.compress(_page(3))])
    skipped = Counter()
    urls = [p.url for p in iter_pages(path, 10_000, skipped)]
    assert urls == ["https://example.org/0", "https://example.org/3"]
    assert skipped[SKIP_CORRUPT] >= 1


def test_garbled_record_in_plain_warc(tmp_path):
    path = tmp_path / "g.warc"
    _write(path, [_page(0), b"WARC/1.0\r\nContent-Length: zz\r\n\r\n", _page(2)])
    skipped = Counter()
    urls = [p.url for p in iter_pages(path, 10_000, skipped)]
    assert urls == ["https://example.org/0", "https://example.org/2"]
    assert sum(skipped.values()) >= 1


def test_non_utf8_page_decoded_by_declared_or_detected_charset(tmp_path):
    text = "Größenordnung: über die Straße, naïve façade, déjà vu, crème brûlée"
    latin = f"<html><body><p>{text}</p></body></html>".encode("latin-1")
    meta = f'<html><head><meta charset="windows-1252"></head><body><p>{text}</p></body></html>'.encode("cp1252")
    path = tmp_path / "c.warc.gz"
    _write(path, [gzip.compress(r) for r in (
        _page(0, latin, "text/html; charset=iso-8859-1"),  # HTTP header declares it
        _page(1, meta, "text/html"),  # only <meta charset>
        _page(2, latin, "text/html"),  # nothing declared: detector
        _page(3, latin, "text/html; charset=utf-8"),  # a wrong declaration falls back to detection
    )])
    skipped = Counter()
    pages = list(iter_pages(path, 10_000, skipped))
    assert len(pages) == 4 and not skipped
    for page in pages:
        assert text in page.html, page.encoding


def test_non_html_binary_oversize_and_status_counted(tmp_path):
    path = tmp_path / "m.warc.gz"
    not_found = response_record("https://example.org/404", DATE, b"<p>x</p>").replace(b"200 OK", b"404 No")
    _write(path, [gzip.compress(r) for r in (
        _page(0, b"%PDF-1.4 ...", "application/pdf"),
        _page(1, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "text/html"),
        _page(2, b"<p>" + b"x" * 5000 + b"</p>"),
        not_found,
        _page(4),
    )])
    skipped = Counter()
    pages = list(iter_pages(path, 1000, skipped))
    assert [p.url for p in pages] == ["https://example.org/4"]
    assert skipped == Counter({SKIP_CONTENT_TYPE: 1, SKIP_BINARY: 1, SKIP_OVERSIZE: 1, SKIP_STATUS: 1})


def test_non_response_records_counted(tmp_path):
    path = tmp_path / "r.warc"
    request = _page(0).replace(b"WARC-Type: response", b"WARC-Type: request")
    _write(path, [request, _page(1)])
    skipped = Counter()
    assert len(list(iter_records(path, skipped))) == 1
    assert skipped == Counter({"not_response_record": 1})


def test_iso_date():
    assert iso_date("2024-03-01T12:00:00.123Z").startswith("2024-03-01T12:00:00.123")
    assert iso_date("garbage") == ""
