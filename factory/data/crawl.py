"""The ``raw_crawl`` stage: WARC shards of the crawl (recipe: "Web Data Curation", its input).

Sources, in this order:
- ``warc_paths``: WARC files (plain or gzip) given as local paths, globs, or fsspec URIs
  (``s3://commoncrawl/crawl-data/CC-MAIN-.../warc/*.warc.gz``); their response records are copied
  and re-sharded; corrupt, truncated and non-response records are counted, not fatal.
- when ``warc_paths`` is empty: the embedded sample crawl of real documents
  (``factory.data.sample_crawl``).
- ``inbox``: a folder whose ``*.warc`` / ``*.warc.gz`` files are added on top (new crawl drops).

Output: ``warc/crawl-NNNNN.warc.gz`` shards (one gzip member per record) and ``crawl.json`` with
counts per source, skip counts by reason, and the list of shards. The output is a deterministic
function of the config and input files.
"""

from __future__ import annotations

import glob
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.data.sample_crawl import LANGUAGES, SOURCES, sample_captures, sample_documents
from factory.data.warc import WarcShardWriter, encode_record, iter_records, response_record

WARC_SUFFIXES = (".warc", ".warc.gz")


class CrawlConfig(StageConfig):
    """Where the crawl comes from and how it is sharded."""

    warc_paths: list[str] = Field(
        [], description="WARC files, globs or fsspec URIs to ingest; empty means the embedded sample crawl.")
    inbox: str = Field("", description="Folder whose *.warc[.gz] files are added to the crawl; empty means none.")
    sample_sources: list[Literal["python_docs", "debian_reference", "python_source"]] = Field(
        list(SOURCES), description="Sources of the embedded sample crawl.")
    languages: list[Literal["en", "de", "fr", "es", "it", "pt", "ja", "zh-cn"]] = Field(
        list(LANGUAGES), description="Debian Reference languages in the sample crawl.")
    max_pages_per_source: int = Field(100, ge=1, description="Sample crawl: documents taken from each source.")
    recapture_fraction: float = Field(
        0.1, ge=0.0, le=1.0, description="Sample crawl: share of each source captured twice.")
    crawl_start: str = Field("2024-06-01T00:00:00Z", description="Sample crawl: WARC-Date of the first capture.")
    recapture_days: int = Field(30, ge=1, description="Sample crawl: days between a page's two captures.")
    seed: int = Field(0, description="Sample crawl: seed of the document selection.")
    shard_bytes: int = Field(8 << 20, ge=1, description="Target compressed size of one output WARC shard.")

    def external_files(self) -> list[str]:
        """Files outside the artifact store this stage reads; the runner keys the artifact on them."""
        return expand_paths(self.warc_paths) + inbox_files(self.inbox)


def expand_paths(patterns: list[str]) -> list[str]:
    """Local paths/globs and fsspec URIs/globs -> sorted concrete files; a pattern matching nothing raises."""
    files: list[str] = []
    for pattern in patterns:
        if "://" in pattern:
            import fsspec

            fsspec.core.url_to_fs(pattern)[0].invalidate_cache()  # list the bucket as it is now
            fs, _, paths = fsspec.get_fs_token_paths(pattern)
            found = sorted(fs.unstrip_protocol(p) for p in paths)
        else:
            found = sorted(glob.glob(str(Path(pattern).expanduser())))
        if not found:
            raise FileNotFoundError(f"raw_crawl.warc_paths entry {pattern!r} matches no file")
        files += found
    return files


def inbox_files(inbox: str) -> list[str]:
    if not inbox:
        return []
    folder = Path(inbox).expanduser()
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.iterdir() if p.is_file() and p.name.endswith(WARC_SUFFIXES))


def _file_digest(path: str) -> str:
    import fsspec

    digest = hashlib.sha256()
    with fsspec.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run_raw_crawl(cfg: CrawlConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict:
    """Write the crawl as WARC shards under ``out/warc`` and its statistics to ``out/crawl.json``."""
    skipped: Counter = Counter()
    by_source: Counter = Counter()
    files = expand_paths(cfg.warc_paths) + inbox_files(cfg.inbox)
    with WarcShardWriter(out / "warc", cfg.shard_bytes) as writer:
        if not cfg.warc_paths:
            docs = sample_documents(tuple(cfg.sample_sources), tuple(cfg.languages), cfg.max_pages_per_source, cfg.seed)
            ctx.log(f"raw_crawl: sample crawl of {len(docs)} real documents from {list(cfg.sample_sources)}")
            for cap in sample_captures(docs, cfg.crawl_start, cfg.recapture_fraction, cfg.recapture_days):
                writer.write(response_record(cap.url, cap.date, cap.body, cap.content_type))
                by_source[f"sample:{cap.source}"] += 1
        for path in files:
            n = 0
            for record in iter_records(path, skipped):
                writer.write(encode_record(record.headers, record.block))
                n += 1
            by_source[path] += n
            ctx.log(f"raw_crawl: {n} response records from {path}")
    stats = {
        "records": writer.records,
        "shards": len(writer.paths),
        "bytes": sum(p.stat().st_size for p in writer.paths),
        "records_by_source": dict(sorted(by_source.items())),
        "skipped": dict(sorted(skipped.items())),
        "input_files": {p: _file_digest(p) for p in files},
    }
    (out / "crawl.json").write_text(json.dumps({**stats, "shard_files": [p.name for p in writer.paths]}, indent=2))
    ctx.log(f"raw_crawl: {stats['records']} records in {stats['shards']} shards, skipped {stats['skipped']}")
    return stats
