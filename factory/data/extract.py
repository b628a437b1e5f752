"""The ``extracted_docs`` stage: main-content text of every HTML page of the crawl, one row per URL
(recipe: "Web Data Curation": custom HTML extraction; URL-level dedup keeping the most recent
version of each page).

Work is per WARC shard (``extract_shard``): read the pages (skips counted by reason in
``factory.data.warc``), drop the pages of blocked hosts (``factory.data.url_blocklist``: the
recipe's safety filtering, before any other work), extract each (``factory.data.main_content``),
drop pages whose text is too short, mask personal data in the text (``factory.data.pii``: e-mail
addresses, phone numbers, public IP addresses; counted per kind in ``pii_masked``).
``executor: local`` runs the shards in this process; ``executor: ray`` maps the same function over
the shards with Ray Data. Each shard's documents go to a scratch parquet file; the
driver reads only their small columns (id, date, where read) to keep the newest capture of each
normalized URL (the one global step), and a part map (``factory.data.documents.map_parts``: Ray
Data ``read_parquet`` -> ``map_batches`` -> ``write_parquet`` under ``ray``) writes the kept rows
as the ``docs.parquet/`` parts, one per WARC shard that keeps a document:

    id (sha1 of the normalized URL), url, date (ISO 8601), source (the URL's host), title, text,
    n_code_blocks, n_math, page_domain (the extraction settings the page router chose:
    general, code or math; ``factory.data.page_routing``), language and language_score (lid.176,
    ``factory.data.langid``: identified here so that dedup and the heuristics run per language)
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import pandas as pd
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.data.documents import DOC_COLUMNS, ensure_ray, map_parts
from factory.data.langid import detect_languages
from factory.data.main_content import extract
from factory.data.page_routing import PageRoutingConfig
from factory.data.pii import mask_pii
from factory.data.url_blocklist import BlocklistConfig, UrlBlocklist
from factory.data.warc import iter_pages

DROP_TOO_SHORT = "text_too_short"
DROP_TOO_DEEP = "nesting_too_deep"
DROP_DUPLICATE_URL = "duplicate_url_older_capture"
DROP_BLOCKED_URL = "blocked_url"
COLUMNS = DOC_COLUMNS


class ExtractConfig(StageConfig):
    """How pages are read, extracted and kept."""

    executor: Literal["local", "ray"] = Field("local", description="Run shards in-process or as a Ray Data map.")
    max_page_bytes: int = Field(2 << 20, ge=1, description="Pages with a larger HTTP body are skipped and counted.")
    min_text_chars: int = Field(200, ge=0, description="Pages whose extracted text is shorter are dropped and counted.")
    routing: PageRoutingConfig = Field(
        PageRoutingConfig(), description="Code/math page router choosing each page's extraction settings.")
    langid_max_chars: int = Field(2000, ge=50, description="Characters of a document the language model reads.")
    blocklist: BlocklistConfig = Field(
        default_factory=BlocklistConfig, description="Hosts whose pages are dropped before extraction.")
    mask_pii: bool = Field(True, description="Replace e-mail addresses, phone numbers and public IPs in the text.")

    def external_files(self) -> list[str]:
        """The blocklist file, so the runner keys the stage on its content: an edited list re-extracts."""
        return [str(Path(self.blocklist.blocklist_file).expanduser())] if self.blocklist.blocklist_file else []


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


def extract_shard(path: str, cfg: ExtractConfig) -> tuple[list[Doc], Counter, Counter, int, float]:
    """(docs, skip/drop counts by reason, masked personal data by kind, pages read, seconds spent
    extracting) of one WARC shard."""
    counts: Counter = Counter()
    masked: Counter = Counter()
    kept = []  # (page, extraction) of pages with enough text
    pages = 0
    seconds = 0.0
    blocklist = UrlBlocklist.from_config(cfg.blocklist)
    for page in iter_pages(path, cfg.max_page_bytes, counts):
        pages += 1
        if blocklist.blocked(page.url):
            counts[DROP_BLOCKED_URL] += 1
            continue
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
        if cfg.mask_pii:
            text, found = mask_pii(result.text)
            result = dataclasses.replace(result, text=text)
            masked.update(found)
        kept.append((page, result))
    languages, scores = detect_languages([r.text for _, r in kept], cfg.langid_max_chars)
    docs = [Doc(url_id(page.url), page.url, page.date, urlsplit(page.url).hostname or "", r.title, r.text,
                r.n_code_blocks, r.n_math, r.domain, lang, score)
            for (page, r), lang, score in zip(kept, languages, scores, strict=True)]
    return docs, counts, masked, pages, seconds


# Hidden columns of the per-shard scratch files: where each document was read (the URL dedup's
# "later capture" tie-break and the keep decision's row key) and its text length (metadata).
_SHARD, _ROW, _CHARS = "_shard", "_row", "_chars"
_SMALL_COLUMNS = ["id", "date", _SHARD, _ROW, _CHARS, "n_code_blocks", "n_math", "page_domain", "language"]


def _write_shard(docs: list[Doc], shard: int, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"n_code_blocks": pa.int64(), "n_math": pa.int64(), "language_score": pa.float64(),
             _SHARD: pa.int64(), _ROW: pa.int64(), _CHARS: pa.int64()}
    columns = [*COLUMNS, _SHARD, _ROW, _CHARS]
    schema = pa.schema([(c, types.get(c, pa.string())) for c in columns])
    rows = [{**asdict(d), _SHARD: shard, _ROW: k, _CHARS: len(d.text)} for k, d in enumerate(docs)]
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def extract_to_scratch(row: dict) -> dict:
    """One WARC shard: extract it, write its documents to ``<scratch>/<shard>.parquet`` and return
    its counts (a WARC file is no Ray Data source: the map writes the shard's table itself)."""
    shard = int(row["shard"])
    docs, counts, masked, pages, seconds = extract_shard(row["path"], ExtractConfig.model_validate_json(row["cfg"]))
    _write_shard(docs, shard, Path(row["scratch"]) / f"{shard:06d}.parquet")
    return {"shard": shard, "counts": json.dumps(counts), "masked": json.dumps(masked), "pages": pages,
            "seconds": seconds}


def _extract_all(shards: list[str], cfg: ExtractConfig, scratch: Path, ctx: StageContext) -> list[dict]:
    """Every shard's counts, in shard order; its documents land in ``scratch``."""
    items = [{"shard": i, "path": p, "cfg": cfg.model_dump_json(), "scratch": str(scratch)}
             for i, p in enumerate(shards)]
    if cfg.executor == "local":
        return [extract_to_scratch(item) for item in items]
    import ray

    ensure_ray(ctx.num_cpus)
    rows = ray.data.from_items(items, override_num_blocks=len(items)).map(extract_to_scratch).take_all()
    return sorted(rows, key=lambda r: r["shard"])


def newest_per_url(small: pd.DataFrame, counts: Counter) -> pd.DataFrame:
    """The rows (of the scratch files' small columns) kept by URL dedup: per id, the newest capture
    (ties: the later one read, in shard then row order)."""
    ordered = small.sort_values(["id", "date", _SHARD, _ROW], kind="stable")
    kept = ordered.drop_duplicates("id", keep="last")
    counts[DROP_DUPLICATE_URL] += len(small) - len(kept)
    return kept


def keep_rows(batch: pd.DataFrame, keep: frozenset[tuple[int, int]]) -> pd.DataFrame:
    """Part map: the scratch rows whose (shard, row) is in ``keep``, without the hidden columns."""
    mask = [(int(s), int(r)) in keep for s, r in zip(batch[_SHARD], batch[_ROW], strict=True)]
    return batch.loc[mask, list(COLUMNS)].reset_index(drop=True)


def run_extracted_docs(cfg: ExtractConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict:
    """Extract every page of ``inputs["raw_crawl"]/warc/*`` into ``out/docs.parquet/`` parts (one per
    WARC shard that keeps a document). Only the small columns of the URL dedup (ids, dates, where
    each document was read) and per-shard counts come to the driver; texts stay in the shard maps."""
    shards = sorted(str(p) for p in (Path(inputs["raw_crawl"]) / "warc").absolute().iterdir()
                    if p.name.endswith((".warc", ".warc.gz")))
    if not shards:
        raise FileNotFoundError(f"no WARC shards under {inputs['raw_crawl']}/warc")
    ctx.log(f"extracted_docs: {len(shards)} shards, executor={cfg.executor}")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = (Path(ctx.work_dir) / "extracted" if ctx.work_dir is not None else Path(tmp)).absolute()
        shutil.rmtree(scratch, ignore_errors=True)  # an interrupted build's shards are redone
        scratch.mkdir(parents=True)
        counts: Counter = Counter()
        masked: Counter = Counter()
        pages = 0
        seconds = 0.0
        for row in _extract_all(shards, cfg, scratch, ctx):
            counts.update(json.loads(row["counts"]))
            masked.update(json.loads(row["masked"]))
            pages += row["pages"]
            seconds += row["seconds"]
        files = sorted(scratch.glob("*.parquet"))
        small = pd.concat([pd.read_parquet(f, columns=_SMALL_COLUMNS) for f in files], ignore_index=True)
        extracted = len(small)
        kept = newest_per_url(small, counts)
        keep = frozenset(zip(kept[_SHARD].astype(int), kept[_ROW].astype(int), strict=True))
        map_parts(functools.partial(keep_rows, keep=keep), files, out, cfg.executor, ctx.num_cpus)
    wall = time.perf_counter() - start
    meta = {
        "shards": len(shards),
        "pages_in": pages,
        "extracted": extracted,
        "docs_out": len(kept),
        "skipped_or_dropped": dict(sorted(counts.items())),
        "pii_masked": dict(sorted(masked.items())),
        "code_blocks": int(kept["n_code_blocks"].sum()),
        "formulas": int(kept["n_math"].sum()),
        "page_domains": dict(sorted(Counter(kept["page_domain"]).items())),
        "languages": dict(Counter(kept["language"]).most_common()),
        "chars_out": int(kept[_CHARS].sum()),
        "extract_pages_per_s": round(pages / seconds, 1) if seconds else 0.0,
        "stage_pages_per_s": round(pages / wall, 1) if wall else 0.0,
    }
    ctx.log(f"extracted_docs: {pages} pages -> {len(kept)} docs; {meta['skipped_or_dropped']}")
    return meta
