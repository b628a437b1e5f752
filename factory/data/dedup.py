"""Document- and line-level deduplication: the ``deduped_docs`` stage (recipe, "Web Data Curation":
"Document-level deduplication (global MinHash)" and "Line-level deduplication ... similar to CCNet:
lines that appear more than 6 times in each bucket of 30M documents"; "Multilingual data": both
levels run within each language).

Document level: word shingles -> MinHash signatures (``datasketch.MinHash.bulk``), computed per
input part (a Ray Data map under ``executor: ray``); then the banding of LSH runs once on the
driver over all signatures (the global step: signatures and ids are all it holds), so
near-duplicates are found across parts (global dedup). Candidates that share a
band are confirmed by the signature's Jaccard estimate against the band's first member, which keeps
the LSH's false positives out; the connected components are the near-duplicate clusters, and each
keeps its most complete member (longest text, smallest id on ties).

Line level: each line is normalized as CCNet does (lower case, digits -> 0, punctuation and extra
spaces removed) and hashed; per bucket of ``line_bucket_docs`` documents (consecutive in id order,
a pseudo-random order like CCNet's shards; and per language) a line whose normalized form occurs
more than ``line_max_repeats`` times is removed everywhere in that bucket. Per-part counts are
merged on the driver; the removal is a part map that writes the output parts.
"""

from __future__ import annotations

import functools
import hashlib
import re
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.core.steps import Steps
from factory.data.documents import Executor, collect_parts, doc_parts, map_parts, read_docs, write_docs

_WORD = re.compile(r"\w+", re.UNICODE)
_DIGIT = re.compile(r"\d")
_PUNCT = re.compile(r"[^\w\s]|_", re.UNICODE)
_SPACE = re.compile(r"\s+")


class DedupConfig(StageConfig):
    """Document MinHash LSH and CCNet line dedup."""

    shingle_size: int = Field(5, ge=1, description="Words per shingle of the MinHash.")
    num_perm: int = Field(128, ge=8, description="Permutations (signature length) of the MinHash.")
    threshold: float = Field(
        0.8, gt=0.0, lt=1.0, description="Jaccard similarity above which two documents are near-duplicates; also the "
        "confirmation bar for LSH candidates.")
    bands: int = Field(
        0, ge=0, description="LSH bands; 0 with rows 0 derives bands and rows from the threshold (datasketch's "
        "optimum).")
    rows: int = Field(0, ge=0, description="Rows per LSH band; bands * rows must not exceed num_perm.")
    seed: int = Field(1, description="MinHash permutation seed.")
    line_max_repeats: int = Field(
        6, ge=1, description="A normalized line occurring more than this many times in a bucket is removed (recipe: "
        "6).")
    line_bucket_docs: int = Field(30_000_000, ge=1, description="Documents per line-dedup bucket (recipe: 30M).")
    per_language: bool = Field(
        True, description="Both dedup levels run within each language (the documents' language column); off: across "
        "all.")
    executor: Executor = Field(
        "local", description="'local' maps the input parts in-process; 'ray' streams them through Ray Data.")


# --- document level ---------------------------------------------------------------------------

def shingles(text: str, size: int) -> set[bytes]:
    """Set of word ``size``-grams (lower-cased); a text shorter than ``size`` words is one shingle."""
    words = _WORD.findall(text.lower())
    if not words:
        return set()
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


def signatures(texts: list[str], shingle_size: int, num_perm: int, seed: int) -> np.ndarray:
    """MinHash signatures, shape (n_docs, num_perm) uint64; a text with no words gets a row of
    zeros (never a valid MinHash value pattern for real shingles, and excluded from banding)."""
    from datasketch import MinHash

    sets = [shingles(t, shingle_size) for t in texts]
    out = np.zeros((len(texts), num_perm), dtype=np.uint64)
    idx = [i for i, s in enumerate(sets) if s]
    if idx:
        hashes = MinHash.bulk([sets[i] for i in idx], num_perm=num_perm, seed=seed)
        out[idx] = np.stack([m.hashvalues for m in hashes]).astype(np.uint64)
    return out


def lsh_params(cfg: DedupConfig) -> tuple[int, int]:
    """(bands, rows): from the config, or datasketch's optimum for the threshold."""
    if cfg.bands and cfg.rows:
        if cfg.bands * cfg.rows > cfg.num_perm:
            raise ValueError(f"bands*rows = {cfg.bands * cfg.rows} exceeds num_perm = {cfg.num_perm}")
        return cfg.bands, cfg.rows
    if cfg.bands or cfg.rows:
        raise ValueError("set both bands and rows, or neither (derived from threshold)")
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    return lsh.b, lsh.r


def near_duplicate_clusters(
    sigs: np.ndarray, bands: int, rows: int, threshold: float, groups: np.ndarray | None = None
) -> np.ndarray:
    """Cluster label per document (connected components of confirmed LSH candidates).

    ``sigs``: (n, num_perm) uint64; ``groups``: optional (n,) int labels (e.g. language) that
    documents must share to be compared. Rows of zeros (empty documents) stay singletons."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sigs)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    valid = sigs.any(axis=1)
    prefix = (np.zeros(n, dtype=np.uint64) if groups is None else groups.astype(np.uint64))[:, None]
    src, dst = [], []
    for b in range(bands):
        band = np.ascontiguousarray(np.hstack([prefix, sigs[:, b * rows:(b + 1) * rows]]))
        keys = band.view(np.dtype((np.void, band.dtype.itemsize * band.shape[1]))).ravel()
        keys = keys[valid]
        members = np.flatnonzero(valid)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        heads = members[first[inverse]]
        cand = heads != members
        src.append(members[cand])
        dst.append(heads[cand])
    a = np.concatenate(src) if src else np.zeros(0, dtype=np.int64)
    h = np.concatenate(dst) if dst else np.zeros(0, dtype=np.int64)
    if len(a):
        pairs = np.unique(np.stack([a, h], axis=1), axis=0)
        a, h = pairs[:, 0], pairs[:, 1]
        # Confirm each candidate by the signatures' Jaccard estimate (fraction of equal minima).
        agree = (sigs[a] == sigs[h]).mean(axis=1)
        keep = agree >= threshold
        a, h = a[keep], h[keep]
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, h)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def cluster_keepers(labels: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Boolean mask: the longest member of each cluster (earliest on ties) is kept."""
    order = np.lexsort((np.arange(len(labels)), -lengths, labels))
    first = np.ones(len(order), dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    keep = np.zeros(len(labels), dtype=bool)
    keep[order[first]] = True
    return keep


# --- line level -------------------------------------------------------------------------------

def normalize_line(line: str) -> str:
    """CCNet's line normalization: NFD accents stripped, lower case, digits -> 0, punctuation and
    repeated whitespace removed."""
    line = unicodedata.normalize("NFD", line.strip().lower())
    line = "".join(c for c in line if unicodedata.category(c) != "Mn")
    line = _DIGIT.sub("0", line)
    line = _PUNCT.sub(" ", line)
    return _SPACE.sub(" ", line).strip()


def line_key(line: str) -> bytes | None:
    """Stable 8-byte hash of the normalized line (stable across processes, unlike ``hash``);
    None for lines that normalize to nothing (blank or punctuation-only lines are never removed)."""
    norm = normalize_line(line)
    return hashlib.blake2b(norm.encode(), digest_size=8).digest() if norm else None


def count_lines(shard: pd.DataFrame) -> pd.DataFrame:
    """Occurrences of each (bucket, group, line hash) in a shard with columns text, _bucket, _group."""
    counts: Counter = Counter()
    for text, bucket, group in zip(shard["text"], shard["_bucket"], shard["_group"], strict=True):
        for line in text.split("\n"):
            key = line_key(line)
            if key is not None:
                counts[(int(bucket), int(group), key)] += 1
    return pd.DataFrame(
        [(b, g, k, n) for (b, g, k), n in counts.items()], columns=["bucket", "group", "key", "n"]
    ).astype({"bucket": "int64", "group": "int64", "n": "int64"})


def repeated_lines(counts: pd.DataFrame, max_repeats: int) -> set[tuple[int, int, bytes]]:
    """Merge per-shard counts; the (bucket, group, line hash) keys seen more than ``max_repeats`` times."""
    if counts.empty:
        return set()
    total = counts.groupby(["bucket", "group", "key"], sort=False)["n"].sum()
    return {(int(b), int(g), k) for (b, g, k) in total[total > max_repeats].index}


def removed_lines(counts: pd.DataFrame, repeated: set[tuple[int, int, bytes]]) -> int:
    """Lines the removal takes out: every occurrence of a repeated (bucket, group, line hash) goes."""
    if counts.empty:
        return 0
    hit = [(int(b), int(g), k) in repeated for b, g, k in zip(counts["bucket"], counts["group"], counts["key"],
                                                               strict=True)]
    return int(counts.loc[hit, "n"].sum())


def drop_repeated_lines(text: str, bucket: int, group: int, repeated: set[tuple[int, int, bytes]]) -> tuple[str, int]:
    """The text without its lines in ``repeated`` for its bucket and group; and how many were removed."""
    kept, removed = [], 0
    for line in text.split("\n"):
        key = line_key(line)
        if key is not None and (bucket, group, key) in repeated:
            removed += 1
        else:
            kept.append(line)
    return "\n".join(kept).strip("\n"), removed


# --- the stage --------------------------------------------------------------------------------
# Three passes over the input parts; between them only small columns live on the driver: each
# document's id, language, length, line count and MinHash signature (num_perm * 8 bytes), the
# (bucket, group) of the kept ids, and the line hashes seen more than line_max_repeats times.
# Documents are ordered by id for the global steps (the clustering's ties, the line buckets), so
# the result depends on the document set only, not on how it is split into parts.

def sign_part(part: pd.DataFrame, cfg: DedupConfig) -> pd.DataFrame:
    """Pass 1 (part map): id, language, text length, line count and MinHash signature (bytes)."""
    sig = signatures(part["text"].fillna("").tolist(), cfg.shingle_size, cfg.num_perm, cfg.seed)
    texts = part["text"].fillna("")
    return pd.DataFrame({"id": part["id"], "language": part["language"].fillna("").astype(str),
                         "length": texts.str.len().astype("int64"),
                         "lines": texts.map(lambda t: len(t.split("\n"))).astype("int64"),
                         "sig": [row.tobytes() for row in sig]})


def count_part(part: pd.DataFrame, keys: dict[str, tuple[int, int]]) -> pd.DataFrame:
    """Pass 2 (part map): line counts of the kept documents, by their (bucket, group) in ``keys``."""
    kept = part[part["id"].isin(keys.keys())]
    bucket_group = [keys[i] for i in kept["id"]]
    work = pd.DataFrame({"text": kept["text"].fillna("").to_numpy(), "_bucket": [b for b, _ in bucket_group],
                         "_group": [g for _, g in bucket_group]})
    return count_lines(work)


def strip_part(part: pd.DataFrame, keys: dict[str, tuple[int, int]],
               repeated: set[tuple[int, int, bytes]]) -> pd.DataFrame:
    """Pass 3 (part map): the kept documents without their repeated lines; emptied ones dropped."""
    kept = part[part["id"].isin(keys.keys())].reset_index(drop=True)
    kept["text"] = [drop_repeated_lines(t, *keys[i], repeated)[0] for t, i in zip(kept["text"].fillna(""), kept["id"],
                                                                                    strict=True)]
    return kept[kept["text"].str.strip().str.len() > 0].reset_index(drop=True)


def dedup_parts(parts: list[Path], out: Path, cfg: DedupConfig, executor: Executor,
                num_cpus: int = 2) -> dict[str, Any]:
    """Both dedup levels over the ``docs.parquet`` parts; writes ``out/docs.parquet`` (same columns)
    and returns the counts."""
    steps = Steps("deduped_docs")
    bands, rows = lsh_params(cfg)
    with steps.step("minhash") as s:
        small = collect_parts(functools.partial(sign_part, cfg=cfg), parts, executor, num_cpus,
                              columns=["id", "text", "language"])
        small = small.sort_values("id", kind="stable").reset_index(drop=True) if len(small) else small
        s.count(docs=len(small))
    with steps.step("lsh") as s:
        n = len(small)
        sigs = (np.frombuffer(b"".join(small["sig"]), dtype=np.uint64).reshape(n, cfg.num_perm) if n
                else np.zeros((0, cfg.num_perm), np.uint64))
        languages = small["language"].to_numpy() if n else np.zeros(0, dtype=object)
        groups = (np.unique(languages, return_inverse=True)[1].astype(np.int64) if cfg.per_language and n
                  else np.zeros(n, dtype=np.int64))
        labels = near_duplicate_clusters(sigs, bands, rows, cfg.threshold, groups)
        keep = cluster_keepers(labels, small["length"].to_numpy() if n else np.zeros(0, np.int64))
        sizes = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
        s.count(kept=int(keep.sum()), dropped=int((~keep).sum()))
    with steps.step("line_dedup") as s:
        buckets = np.arange(int(keep.sum())) // cfg.line_bucket_docs
        keys = dict(zip(small["id"][keep], zip(buckets.tolist(), groups[keep].tolist(), strict=True), strict=True))
        counts = collect_parts(functools.partial(count_part, keys=keys), parts, executor, num_cpus,
                               columns=["id", "text"])
        repeated = repeated_lines(counts, cfg.line_max_repeats)
        lines_removed = removed_lines(counts, repeated)
        written = map_parts(functools.partial(strip_part, keys=keys, repeated=repeated), parts, out, executor, num_cpus)
        docs_out = sum(pq.ParquetFile(p).metadata.num_rows for p in written)
        lines_in = int(small["lines"][keep].sum()) if n else 0
        emptied = int(keep.sum()) - docs_out
        s.count(lines_in=lines_in, lines_removed=lines_removed, docs_emptied=emptied)

    total = steps.total_seconds
    return {
        "docs_in": int(n),
        "docs_out": int(docs_out),
        "near_dup_clusters": int((sizes > 1).sum()),
        "docs_removed_near_dup": int((~keep).sum()),
        "lines_in": lines_in,
        "lines_removed": lines_removed,
        "docs_removed_empty_after_line_dedup": emptied,
        "line_buckets": int(buckets.max() + 1) if len(buckets) else 0,
        "per_language": cfg.per_language,
        "languages": int(groups.max()) + 1 if len(groups) else 0,
        "lsh_bands": bands,
        "lsh_rows": rows,
        "steps": steps.summary(),
        "docs_per_s": round(n / total, 2) if total > 0 else 0.0,
    }


def dedup_frame(df: pd.DataFrame, cfg: DedupConfig, num_parts: int = 1,
                executor: Executor = "local") -> tuple[pd.DataFrame, dict[str, Any]]:
    """``dedup_parts`` on an in-memory document table split into ``num_parts`` parts: the kept
    documents (in part order) and the counts."""
    with tempfile.TemporaryDirectory() as tmp:
        parts = write_docs(df, Path(tmp) / "in", num_parts)
        meta = dedup_parts(parts, Path(tmp) / "out", cfg, executor)
        return read_docs(Path(tmp) / "out"), meta


def run_deduped_docs(cfg: DedupConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    """Remove near-duplicate documents and repeated lines from the ``extracted_docs`` parts; write
    ``out/docs.parquet/`` with the same columns."""
    parts = doc_parts(inputs["extracted_docs"])
    ctx.log(f"dedup: {len(parts)} parts, executor={cfg.executor}")
    meta = dedup_parts(parts, out, cfg, cfg.executor, ctx.num_cpus)
    ctx.log(
        f"dedup: {meta['docs_removed_near_dup']} near-duplicates in {meta['near_dup_clusters']} clusters, "
        f"{meta['lines_removed']} lines removed, {meta['docs_out']} of {meta['docs_in']} documents kept"
    )
    return meta
