"""The ``extracted_docs`` stage: main-content text of every HTML page of the crawl, one row per URL
(recipe: "Web Data Curation": custom HTML extraction; URL-level dedup keeping the most recent
version of each page).

Work is per WARC shard (``extract_shard``): read the pages (skips counted by reason in
``factory.data.warc``), extract each (``factory.data.main_content``), drop pages whose text is
too short. ``executor: local`` runs the shards in this process; ``executor: ray`` maps the same
function over the shards with Ray Data. The driver then keeps the newest capture of each
normalized URL and writes ``docs.parquet``:

    id (sha1 of the normalized URL), url, date (ISO 8601), source (the URL's host), title, text,
    n_code_blocks, n_math, page_domain (the extraction settings the page router chose:
    general, code or math; ``factory.data.page_routing``), language and language_score (lid.176,
    ``factory.data.langid``: identified here so that dedup and the heuristics run per language)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.data.documents import DOC_COLUMNS
from factory.data.langid import detect_languages
from factory.data.main_content import extract
from factory.data.page_routing import PageRoutingConfig
from factory.data.warc import iter_pages

DROP_TOO_SHORT = "text_too_short"
DROP_TOO_DEEP = "nesting_too_deep"
DROP_DUPLICATE_URL = "duplicate_url_older_capture"
COLUMNS = DOC_COLUMNS


class ExtractConfig(StageConfig):
    """How pages are read, extracted and kept."""

    executor: Literal["local", "ray"] = Field("local", description="Run shards in-process or as a Ray Data map.")
    max_page_bytes: int = Field(2 << 20, ge=1, description="Pages with a larger HTTP body are skipped and counted.")
    min_text_chars: int = Field(200, ge=0, description="Pages whose extracted text is shorter are dropped and counted.")
    routing: PageRoutingConfig = Field(
        PageRoutingConfig(), description="Code/math page router choosing each page's extraction settings.")
    langid_max_chars: int = Field(2000, ge=50, description="Characters of a document the language model reads.")


@dataclass(frozen=True)
class Doc:
    id: str
    url: str
    date: str
    source: str
    title: str
    text: str
    n_code_blocks: int
    n_math: int
    page_domain: str
    language: str
    language_score: float


def normalize_url(url: str) -> str:
    """Scheme and host lower-cased, default port and fragment removed, empty path as ``/``."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port if parts.port and (scheme, parts.port) not in (("http", 80), ("https", 443)) else None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def url_id(url: str) -> str:
    return hashlib.sha1(normalize_url(url).encode("utf-8")).hexdigest()


def extract_shard(path: str, cfg: ExtractConfig) -> tuple[list[Doc], Counter, int, float]:
    """(docs, skip/drop counts by reason, pages read, seconds spent extracting) of one WARC shard."""
    counts: Counter = Counter()
    kept = []  # (page, extraction) of pages with enough text
    pages = 0
    seconds = 0.0
    for page in iter_pages(path, cfg.max_page_bytes, counts):
        pages += 1
        start = time.perf_counter()
        try:
            result = extract(page.html, cfg.routing)
        except RecursionError:  # pathological nesting (thousands of unclosed elements)
            counts[DROP_TOO_DEEP] += 1
            continue
        finally:
            seconds += time.perf_counter() - start
        if len(result.text) < cfg.min_text_chars:
            counts[DROP_TOO_SHORT] += 1
            continue
        kept.append((page, result))
    languages, scores = detect_languages([r.text for _, r in kept], cfg.langid_max_chars)
    docs = [Doc(url_id(page.url), page.url, page.date, urlsplit(page.url).hostname or "", r.title, r.text,
                r.n_code_blocks, r.n_math, r.domain, lang, score)
            for (page, r), lang, score in zip(kept, languages, scores, strict=True)]
    return docs, counts, pages, seconds


def _shard_row(row: dict) -> dict:
    """Ray Data map: one shard in, its docs and counts out as JSON (schemas stay flat and fixed)."""
    docs, counts, pages, seconds = extract_shard(row["path"], ExtractConfig.model_validate_json(row["cfg"]))
    return {"path": row["path"], "docs": json.dumps([asdict(d) for d in docs]), "counts": json.dumps(counts),
            "pages": pages, "seconds": seconds}


def _run_ray(shards: list[str], cfg: ExtractConfig, ctx: StageContext) -> list[dict]:
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=ctx.num_cpus, include_dashboard=False)
    items = [{"path": p, "cfg": cfg.model_dump_json()} for p in shards]
    rows = ray.data.from_items(items, override_num_blocks=len(items)).map(_shard_row).take_all()
    return sorted(rows, key=lambda r: r["path"])  # shard order, as the local executor reads them


def newest_per_url(docs: list[Doc], counts: Counter) -> list[Doc]:
    """One doc per id: the newest capture (ties: the later one read); sorted by URL."""
    keep: dict[str, Doc] = {}
    for doc in docs:
        old = keep.get(doc.id)
        if old is not None:
            counts[DROP_DUPLICATE_URL] += 1
            if old.date > doc.date:
                continue
        keep[doc.id] = doc
    return sorted(keep.values(), key=lambda d: (d.url, d.id))


def write_docs(docs: list[Doc], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"n_code_blocks": pa.int64(), "n_math": pa.int64(), "language_score": pa.float64()}
    schema = pa.schema([(c, types.get(c, pa.string())) for c in COLUMNS])
    table = pa.Table.from_pylist([asdict(d) for d in docs], schema=schema)
    pq.write_table(table, path)


def run_extracted_docs(cfg: ExtractConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict:
    """Extract every page of ``inputs["raw_crawl"]/warc/*`` into ``out/docs.parquet``."""
    shards = sorted(str(p) for p in (Path(inputs["raw_crawl"]) / "warc").iterdir()
                    if p.name.endswith((".warc", ".warc.gz")))
    if not shards:
        raise FileNotFoundError(f"no WARC shards under {inputs['raw_crawl']}/warc")
    ctx.log(f"extracted_docs: {len(shards)} shards, executor={cfg.executor}")
    start = time.perf_counter()
    counts: Counter = Counter()
    docs: list[Doc] = []
    pages = 0
    seconds = 0.0
    if cfg.executor == "ray":
        for row in _run_ray(shards, cfg, ctx):
            docs += [Doc(**d) for d in json.loads(row["docs"])]
            counts.update(json.loads(row["counts"]))
            pages += row["pages"]
            seconds += row["seconds"]
    else:
        for shard in shards:
            shard_docs, shard_counts, shard_pages, shard_seconds = extract_shard(shard, cfg)
            docs += shard_docs
            counts.update(shard_counts)
            pages += shard_pages
            seconds += shard_seconds
    extracted = len(docs)
    docs = newest_per_url(docs, counts)
    out.mkdir(parents=True, exist_ok=True)
    write_docs(docs, out / "docs.parquet")
    wall = time.perf_counter() - start
    meta = {
        "shards": len(shards),
        "pages_in": pages,
        "extracted": extracted,
        "docs_out": len(docs),
        "skipped_or_dropped": dict(sorted(counts.items())),
        "code_blocks": sum(d.n_code_blocks for d in docs),
        "formulas": sum(d.n_math for d in docs),
        "page_domains": dict(sorted(Counter(d.page_domain for d in docs).items())),
        "languages": dict(Counter(d.language for d in docs).most_common()),
        "chars_out": sum(len(d.text) for d in docs),
        "extract_pages_per_s": round(pages / seconds, 1) if seconds else 0.0,
        "stage_pages_per_s": round(pages / wall, 1) if wall else 0.0,
    }
    ctx.log(f"extracted_docs: {pages} pages -> {len(docs)} docs; {meta['skipped_or_dropped']}")
    return meta
