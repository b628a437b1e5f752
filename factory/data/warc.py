"""WARC input and output for the crawl (recipe: "Web Data Curation" — we parse raw HTML from WARC
response records ourselves rather than using Common Crawl's WET text).

Reading is fault tolerant: a crawl is full of truncated gzip members, garbled records, binary
payloads mislabelled as HTML and pages in legacy charsets. None of that is fatal and nothing is
dropped silently: every record that does not become a page is counted in a ``Counter`` under its
reason (the ``SKIP_*`` names below), which the stages report in their metadata.

Two layers:
- ``iter_records`` yields intact WARC response records (headers + HTTP block) and resynchronises
  after a corrupt region of the stream (the next gzip member or ``WARC/`` line), counting it.
- ``iter_pages`` turns those records into decoded HTML ``Page`` s: HTTP 200, an HTML content type,
  a size limit, no binary payload, and a charset from the HTTP header, then ``<meta charset>``,
  then uchardet (resiliparse's detector).

``WarcShardWriter`` writes response records into size-bounded ``*.warc.gz`` shards, one gzip
member per record as Common Crawl does (so a reader can resynchronise at the next record).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SKIP_CORRUPT = "corrupt_stream"  # unreadable bytes (bad gzip member, invalid WARC header)
SKIP_NOT_RESPONSE = "not_response_record"  # request/metadata/warcinfo/unknown records
SKIP_TRUNCATED = "truncated_record"  # block shorter than its declared Content-Length
SKIP_NO_URL = "missing_target_uri"
SKIP_BAD_HTTP = "malformed_http"  # the block holds no parseable HTTP response head
SKIP_STATUS = "http_status_not_200"
SKIP_CONTENT_TYPE = "non_html_content_type"
SKIP_OVERSIZE = "oversize_page"
SKIP_BINARY = "binary_payload"
SKIP_EMPTY = "empty_payload"

GZIP_MAGIC = b"\x1f\x8b\x08"
WARC_MAGIC = b"WARC/1."
HTML_TYPES = ("text/html", "application/xhtml+xml")
# Bytes sniffed for NUL characters: real HTML in any ASCII-compatible charset has none; UTF-16
# pages are the exception and are recognised by their byte-order mark.
BINARY_SNIFF_BYTES = 2048
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


@dataclass(frozen=True)
class Record:
    """One intact WARC response record: its WARC headers and its HTTP block (head + body)."""

    headers: dict[str, str]
    block: bytes

    @property
    def url(self) -> str:
        return self.headers.get("WARC-Target-URI", "").strip("<> ")

    @property
    def date(self) -> str:
        return self.headers.get("WARC-Date", "")


@dataclass(frozen=True)
class Page:
    """A decoded HTML page of the crawl."""

    url: str
    date: str  # ISO 8601, UTC, e.g. 2024-03-01T12:00:00+00:00
    html: str
    encoding: str


def _open(path: str | Path):
    """Binary stream of a local path or any fsspec URI (s3://, gs://, https://...)."""
    text = str(path)
    if "://" in text:
        import fsspec

        return fsspec.open(text, "rb").open()
    return open(text, "rb")


def iter_records(path: str | Path, skipped: Counter) -> Iterator[Record]:
    """Intact response records of one WARC file (plain or gzip). Corrupt regions are skipped up
    to the next record boundary and counted under ``corrupt_stream``; other record types under
    ``not_response_record``; short blocks under ``truncated_record``."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    with _open(path) as stream:
        start = stream.read(len(GZIP_MAGIC))
        magic = GZIP_MAGIC if start == GZIP_MAGIC else WARC_MAGIC
        offset = 0
        retrying = False  # the previous attempt failed: a new failure is the same corrupt region
        while True:
            stream.seek(offset)
            last_pos = None
            try:
                for rec in ArchiveIterator(stream, parse_http=False):
                    last_pos = offset + rec.stream_pos
                    if rec.record_type != WarcRecordType.response:
                        skipped[SKIP_NOT_RESPONSE] += 1
                        continue
                    headers = dict(rec.headers.items())
                    block = rec.reader.read()
                    declared = headers.get("Content-Length", "")
                    if not declared.isdigit() or len(block) < int(declared):
                        skipped[SKIP_TRUNCATED] += 1
                        continue
                    yield Record(headers, block)
                return
            except OSError:
                if last_pos is not None or not retrying:
                    skipped[SKIP_CORRUPT] += 1
                retrying = True
            # Resynchronise at the next record boundary (gzip member / WARC header line) after the
            # last record read; if nothing could be read from ``offset`` on, step past it. Each
            # retry starts strictly later, so the loop ends.
            resume = (last_pos if last_pos is not None else offset) + 1
            offset = _next_boundary(stream, magic, resume)
            if offset < 0:
                return


def _next_boundary(stream, magic: bytes, start: int, chunk: int = 1 << 20) -> int:
    """Offset of the next ``magic`` at or after ``start``, or -1 at end of stream."""
    pos = max(start, 0)
    while True:
        stream.seek(pos)
        data = stream.read(chunk + len(magic))
        if len(data) < len(magic):
            return -1
        hit = data.find(magic)
        if hit >= 0:
            return pos + hit
        pos += chunk


def _split_http(block: bytes) -> tuple[int, dict[str, str], bytes] | None:
    """HTTP response head + body of a block, or None if it is not an HTTP response."""
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
        if not sep:
            return None
    lines = head.decode("latin-1").splitlines()
    if not lines or not lines[0].startswith("HTTP/"):
        return None
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if colon:
            fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields, body


def _charset(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'").lower()
    return ""


def decode_html(body: bytes, declared: str = "") -> tuple[str, str]:
    """(text, encoding) of an HTML body: the HTTP-declared charset if it decodes cleanly, then
    ``<meta charset>``, then uchardet; undecodable bytes are replaced, never fatal."""
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding, map_encoding_to_html5

    if declared:
        enc = map_encoding_to_html5(declared)
        if enc:
            try:
                return body.decode(enc), enc
            except (UnicodeDecodeError, LookupError):
                pass
    enc = detect_encoding(body, from_html_meta=True)
    return bytes_to_str(body, enc, errors="replace"), enc


def iso_date(warc_date: str) -> str:
    """WARC-Date (``2024-03-01T12:00:00Z``, fractional seconds allowed) -> ISO 8601 in UTC."""
    text = warc_date.strip().replace("Z", "+00:00")
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return ""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat()


def page_of(record: Record, max_page_bytes: int, skipped: Counter) -> Page | None:
    """The decoded HTML page of a record, or None with the reason counted in ``skipped``."""
    if not record.url:
        skipped[SKIP_NO_URL] += 1
        return None
    http = _split_http(record.block)
    if http is None:
        skipped[SKIP_BAD_HTTP] += 1
        return None
    status, fields, body = http
    if status != 200:
        skipped[SKIP_STATUS] += 1
        return None
    content_type = fields.get("content-type", "")
    if content_type.split(";")[0].strip().lower() not in HTML_TYPES:
        skipped[SKIP_CONTENT_TYPE] += 1
        return None
    if len(body) > max_page_bytes:
        skipped[SKIP_OVERSIZE] += 1
        return None
    if not body.strip():
        skipped[SKIP_EMPTY] += 1
        return None
    if b"\x00" in body[:BINARY_SNIFF_BYTES] and not body.startswith(_UTF16_BOMS):
        skipped[SKIP_BINARY] += 1
        return None
    html, enc = decode_html(body, _charset(content_type))
    return Page(record.url, iso_date(record.date), html, enc)


def iter_pages(path: str | Path, max_page_bytes: int, skipped: Counter) -> Iterator[Page]:
    """Decoded HTML pages of one WARC file; everything else is counted in ``skipped``."""
    for record in iter_records(path, skipped):
        page = page_of(record, max_page_bytes, skipped)
        if page is not None:
            yield page


def response_record(url: str, date: str, body: bytes, content_type: str = "text/html; charset=utf-8") -> bytes:
    """Serialized WARC/1.1 response record (uncompressed) for ``body`` fetched from ``url``.
    The record id is derived from (url, date) so identical inputs give identical bytes."""
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode("latin-1")
    record_id = uuid.UUID(bytes=hashlib.sha1(f"{url} {date}".encode()).digest()[:16])
    return encode_record({
        "WARC-Type": "response", "WARC-Date": date, "WARC-Record-ID": f"<urn:uuid:{record_id}>",
        "WARC-Target-URI": url, "Content-Type": "application/http; msgtype=response",
    }, head + body)


def encode_record(headers: dict[str, str], block: bytes) -> bytes:
    """Serialize a record with fastwarc: given headers kept, Content-Length and digests recomputed."""
    from fastwarc.warc import WarcRecord, WarcRecordType

    rec = WarcRecord()
    rec.init_headers(record_type=WarcRecordType.response)
    for name, value in headers.items():
        if name not in ("Content-Length", "WARC-Block-Digest", "WARC-Payload-Digest", "WARC-Type"):
            rec.headers[name] = value
    rec.set_bytes_content(block)
    buf = io.BytesIO()
    rec.write(buf, checksum_data=True)
    return buf.getvalue()


class WarcShardWriter:
    """Writes records into ``<dir>/<prefix>-NNNNN.warc.gz`` shards of at most ``shard_bytes``
    (compressed; a shard always holds at least one record). One gzip member per record."""

    def __init__(self, directory: Path, shard_bytes: int, prefix: str = "crawl"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shard_bytes = shard_bytes
        self.prefix = prefix
        self.paths: list[Path] = []
        self.records = 0
        self._file: Any = None
        self._size = 0

    def write(self, record: bytes) -> None:
        member = gzip.compress(record, mtime=0)  # mtime=0: identical input -> identical shard bytes
        if self._file is None or (self._size and self._size + len(member) > self.shard_bytes):
            self._rotate()
        self._file.write(member)
        self._size += len(member)
        self.records += 1

    def _rotate(self) -> None:
        if self._file is not None:
            self._file.close()
        path = self.directory / f"{self.prefix}-{len(self.paths):05d}.warc.gz"
        self.paths.append(path)
        self._file = open(path, "wb")
        self._size = 0

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> WarcShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
