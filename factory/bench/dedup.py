"""Near-duplicate detection: planted near-duplicates in real documents, factory vs plain datasketch.

The corpus is real text installed with Debian's documentation packages (the Python 3.11 docs'
reStructuredText sources and the Debian Reference in several languages, cut into sections, plus standard-library
source files served as pages).
Near-duplicates are planted by copying documents with a few word edits, a paragraph reorder, or a
boilerplate header/footer added. Both contenders see the same documents at the same threshold and
permutation count; a pair counts as found when both ends land in one cluster (factory) or one is
returned by the other's LSH query (datasketch: per-doc ``MinHash`` + ``MinHashLSH`` loop).
"""

from __future__ import annotations

import html
import random
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factory.data.documents import DOC_COLUMNS
from factory.data.langid import detect_languages

PY_SOURCES = Path("/usr/share/doc/python3.11/html/_sources")
DEBIAN_REFERENCE = Path("/usr/share/debian-reference")
STDLIB = Path("/usr/lib/python3.11")
_BOILERPLATE = [
    "Home | About | Contact | Privacy policy | Terms of use",
    "Subscribe to our newsletter for the latest updates and offers.",
    "Copyright 2024 Example Media. All rights reserved.",
    "Share this page on social media. Cookie settings.",
]


class _HTMLText(HTMLParser):
    """Visible text of an HTML page, one line per block element; <pre> blocks counted."""

    _BLOCKS = {"p", "div", "pre", "li", "h1", "h2", "h3", "h4", "tr", "br", "dt", "dd", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head"):
            self.skip += 1
        if tag == "pre":
            self.pre += 1
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head"):
            self.skip = max(0, self.skip - 1)
        if tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def _html_text(raw: str) -> tuple[str, int]:
    parser = _HTMLText()
    parser.feed(raw)
    text = "".join(parser.parts)
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip(), parser.pre


def _chunks(text: str, max_chars: int) -> list[str]:
    """Cut a long text at paragraph boundaries into pieces of about ``max_chars``."""
    out, cur = [], ""
    for para in text.split("\n\n"):
        if cur and len(cur) + len(para) > max_chars:
            out.append(cur)
            cur = ""
        cur = f"{cur}\n\n{para}" if cur else para
    if cur:
        out.append(cur)
    return out


def _python_docs(languages: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for path in sorted(PY_SOURCES.rglob("*.rst.txt")):
        text = path.read_text(errors="replace")
        if len(text) < 200:
            continue
        rel = path.relative_to(PY_SOURCES)
        for j, part in enumerate(_chunks(text, 6000)):
            yield {
                "id": f"py:{rel}:{j}", "url": f"https://docs.python.org/3.11/{rel}#{j}", "source": "docs.python.org",
                "title": path.stem, "text": part, "n_code_blocks": part.count("::\n\n") + part.count(".. code-block::"),
                "n_math": part.count(":math:") + part.count(".. math::"),
            }


def _debian_reference(languages: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for path in sorted(DEBIAN_REFERENCE.glob("*.html")):
        if path.name.split(".")[1] not in languages:
            continue
        text, n_pre = _html_text(html.unescape(path.read_text(errors="replace")))
        for j, part in enumerate(_chunks(text, 4000)):
            yield {
                "id": f"debref:{path.name}:{j}", "url": f"https://www.debian.org/doc/manuals/debian-reference/{path.name}#{j}",
                "source": "www.debian.org", "title": path.stem, "text": part,
                "n_code_blocks": n_pre * len(part) // max(len(text), 1), "n_math": 0,
            }


def _stdlib_sources(languages: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    for path in sorted(STDLIB.glob("*.py"))[::4]:
        yield {
            "id": f"src:{path.name}", "url": f"https://github.com/python/cpython/blob/3.11/Lib/{path.name}",
            "source": "github.com", "title": path.name, "text": path.read_text(errors="replace")[:6000],
            "n_code_blocks": 1, "n_math": 0,
        }


def reference_corpus(limit: int, languages: tuple[str, ...] = ("en", "de", "fr", "es", "it", "pt")) -> pd.DataFrame:
    """Up to ``limit`` real documents in the docs.parquet schema, interleaving about 2:2:1 Python
    doc pages (code-heavy, some math), Debian Reference sections in ``languages`` and
    standard-library source files. Files are read only as far as ``limit`` needs."""
    if not PY_SOURCES.exists() or not DEBIAN_REFERENCE.exists():
        raise FileNotFoundError("install python3.11-doc and debian-reference-* for the reference corpus")
    pattern = [0, 1, 0, 1, 2]
    gens = [_python_docs(languages), _debian_reference(languages), _stdlib_sources(languages)]
    rows: list[dict[str, Any]] = []
    live = set(range(len(gens)))
    while len(rows) < limit and live:
        for k in pattern:
            if k in live and len(rows) < limit:
                row = next(gens[k], None)
                if row is None:
                    live.discard(k)
                else:
                    rows.append(row)
    df = pd.DataFrame(rows)
    df.insert(2, "date", "2026-11-01")
    df["page_domain"] = "general"  # text sources, not crawled pages: the page router has not run
    df["language"], df["language_score"] = detect_languages(df["text"].tolist())
    return df[list(DOC_COLUMNS)]


def plant_near_duplicates(df: pd.DataFrame, fraction: float, seed: int) -> tuple[pd.DataFrame, list[tuple[str, str]]]:
    """Append edited copies of a ``fraction`` of the documents; returns the corpus and the planted
    (original id, copy id) pairs. Edits: ~1% of words replaced, two paragraphs swapped, or a
    boilerplate header and footer added."""
    rng = random.Random(seed)
    originals = rng.sample(range(len(df)), int(len(df) * fraction))
    copies, pairs = [], []
    for k, i in enumerate(originals):
        row = df.iloc[i].to_dict()
        text = row["text"]
        kind = k % 3
        if kind == 0:
            words = text.split(" ")
            for j in rng.sample(range(len(words)), max(1, len(words) // 100)):
                words[j] = rng.choice(["the", "data", "value", "system", "file"])
            text = " ".join(words)
        elif kind == 1:
            paras = text.split("\n\n")
            if len(paras) > 2:
                a, b = rng.sample(range(len(paras)), 2)
                paras[a], paras[b] = paras[b], paras[a]
            text = "\n\n".join(paras)
        else:
            text = f"{_BOILERPLATE[k % 4]}\n{text}\n{_BOILERPLATE[(k + 1) % 4]}"
        row.update(id=f"{row['id']}#dup{k}", text=text)
        copies.append(row)
        pairs.append((df.iloc[i]["id"], row["id"]))
    return pd.concat([df, pd.DataFrame(copies)], ignore_index=True), pairs


def _pair_scores(found: set[frozenset], pairs: list[tuple[str, str]]) -> tuple[float, float]:
    planted = {frozenset(p) for p in pairs}
    hit = len(planted & found)
    recall = hit / len(planted) if planted else 1.0
    precision = hit / len(found) if found else 1.0
    return precision, recall


def _factory_pairs(df: pd.DataFrame, threshold: float, num_perm: int, shingle: int) -> set[frozenset]:
    from factory.data.dedup import DedupConfig, lsh_params, near_duplicate_clusters, signatures

    cfg = DedupConfig(threshold=threshold, num_perm=num_perm, shingle_size=shingle)
    bands, rows = lsh_params(cfg)
    sigs = signatures(df["text"].tolist(), shingle, num_perm, cfg.seed)
    labels = near_duplicate_clusters(sigs, bands, rows, threshold)
    ids = df["id"].to_numpy()
    found = set()
    for label in np.flatnonzero(np.bincount(labels) > 1):
        members = ids[labels == label]
        found |= {frozenset((a, b)) for i, a in enumerate(members) for b in members[i + 1:]}
    return found


def _datasketch_pairs(df: pd.DataFrame, threshold: float, num_perm: int, shingle: int) -> set[frozenset]:
    from datasketch import MinHash, MinHashLSH

    from factory.data.dedup import shingles

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    found = set()
    for doc_id, text in zip(df["id"], df["text"], strict=True):
        m = MinHash(num_perm=num_perm, seed=1)
        for s in shingles(text, shingle):
            m.update(s)
        for other in lsh.query(m):
            found.add(frozenset((doc_id, other)))
        lsh.insert(doc_id, m)
    return found


def add_arguments(parser) -> None:
    parser.add_argument("--docs", type=int, default=1500, help="real documents before planting")
    parser.add_argument("--dup-fraction", type=float, default=0.2, help="fraction of documents copied with edits")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--shingle", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)


def run(args) -> list[dict[str, Any]]:
    base = reference_corpus(args.docs)
    df, pairs = plant_near_duplicates(base, args.dup_fraction, args.seed)
    rows = []
    for name, fn in (("factory", _factory_pairs), ("datasketch", _datasketch_pairs)):
        t = time.perf_counter()
        found = fn(df, args.threshold, args.num_perm, args.shingle)
        dt = time.perf_counter() - t
        precision, recall = _pair_scores(found, pairs)
        rows.append({"name": name, "docs": len(df), "planted_pairs": len(pairs), "found_pairs": len(found),
                     "precision": round(precision, 4), "recall": round(recall, 4),
                     "docs_per_s": round(len(df) / dt, 1)})
    return rows
