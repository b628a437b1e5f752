"""Main-content extraction quality and speed: the factory's extractor vs. trafilatura and resiliparse.

Data: ``--data`` (default ``../shared/data/extraction-dev``): ``html/<id>.html.gz`` pages and
``ground-truth.json`` ``{id: {"articleBody": text, "url": url}}``. The metric is the benchmark's
own (see its README): tokens are ``\\w+`` runs, the unit is the 4-word shingle (a multiset); per
page precision and recall of the extracted shingles against the ground truth's, each averaged
over pages, F1 of the two averages. ``pages_per_s`` times the extraction call only, on one core
(every contender gets the decoded ``str`` page; parsing is part of the call), best of ``--repeat``
interleaved passes. Row ``factory-no-routing`` is the ablation of the code/math page router: every
page through the general extraction settings.

``--codemath`` adds the code/math preservation figures of ``factory.bench.codemath`` as columns:
the share of ``<pre>`` blocks of real Python documentation pages recovered byte-exact, of their
prose's inline code recovered verbatim, and of formulas (TeX from the PyTorch sources, in
MathML / MathJax / image-alt form) recovered.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.bench.cpu import cpu_settings

DEFAULT_DATA = "../shared/data/extraction-dev"
_WORD = re.compile(r"\w+")
SHINGLE = 4


def shingles(text: str) -> Counter:
    words = _WORD.findall(text)
    return Counter(tuple(words[i:i + SHINGLE]) for i in range(max(len(words) - SHINGLE + 1, 0)))


def precision_recall(predicted: str, truth: str) -> tuple[float, float]:
    """Per-page shingle precision and recall; an empty side scores 1 only against an empty side."""
    pred, true = shingles(predicted), shingles(truth)
    overlap = sum((pred & true).values())
    n_pred, n_true = sum(pred.values()), sum(true.values())
    precision = overlap / n_pred if n_pred else float(n_true == 0)
    recall = overlap / n_true if n_true else float(n_pred == 0)
    return precision, recall


def load_dev_set(folder: Path) -> list[tuple[str, str, str]]:
    """[(id, html, ground-truth text)] sorted by id."""
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = []
    for key in sorted(truth):
        path = folder / "html" / f"{key}.html.gz"
        pages.append((key, gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace"),
                      truth[key]["articleBody"]))
    return pages


def extractors() -> dict[str, Callable[[str], str]]:
    from factory.data.main_content import extract
    from factory.data.page_routing import PageRoutingConfig

    out: dict[str, Callable[[str], str]] = {"factory": lambda html: extract(html).text}
    # Ablation: every page through the general pipeline (no code/math routing before extraction).
    general = PageRoutingConfig(enabled=False)
    out["factory-no-routing"] = lambda html: extract(html, general).text
    try:
        import trafilatura

        out["trafilatura"] = lambda html: trafilatura.extract(html) or ""
    except ImportError:  # the `bench` extra is not installed
        pass
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    out["resiliparse"] = lambda html: extract_plain_text(HTMLTree.parse(html), main_content=True)
    return out


def score(fns: dict[str, Callable[[str], str]], pages: list[tuple[str, str, str]], repeat: int) -> list[dict[str, Any]]:
    """One row per extractor: shingle precision/recall/F1 and pages/s of its fastest pass. The
    passes are interleaved (each round runs every extractor once), so a machine that speeds up or
    slows down during the run moves all contenders alike and the ratios stay fair."""
    for fn in fns.values():
        fn(pages[0][1])  # warm-up: lazy imports and caches stay out of the timing
    best = dict.fromkeys(fns, float("inf"))
    outputs: dict[str, list[str]] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            outputs[name] = [fn(html) for _, html, _ in pages]
            best[name] = min(best[name], time.perf_counter() - start)
    rows = []
    for name in fns:
        prs = [precision_recall(out, truth) for out, (_, _, truth) in zip(outputs[name], pages, strict=True)]
        precision = sum(p for p, _ in prs) / len(prs)
        recall = sum(r for _, r in prs) / len(prs)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        rows.append({"name": name, "pages": len(pages), "precision": round(precision, 4), "recall": round(recall, 4),
                     "f1": round(f1, 4), "pages_per_s": round(len(pages) / best[name], 1)})
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder with html/ and ground-truth.json")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest counts")
    parser.add_argument("--codemath", action="store_true", help="add code/math preservation columns")
    parser.add_argument("--max-pages", type=int, default=200, help="--codemath: Python doc pages used")


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    pages = load_dev_set(Path(args.data))
    fns = extractors()
    with cpu_settings(one_core=True):  # one core, as the README's peers
        rows = score(fns, pages, args.repeat)
    if args.codemath:
        from factory.bench.codemath import build_cases, preservation

        cases = build_cases(args.max_pages)
        for row in rows:
            row.update(preservation(fns[row["name"]], cases))
    return rows
