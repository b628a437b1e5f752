"""Curation throughput: deduped_docs + filtered_corpus on real documents, in documents per second.

The corpus is the installed Debian documentation text (see ``factory.bench.dedup``). Both stages
run as the pipeline runs them (their ``run_*`` functions on a docs.parquet), with the smoke-sized
encoder settings unless overridden; the row reports docs/s over the two stages together, the
share of each sub-stage, and what was kept.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from factory.bench.dedup import reference_corpus


def add_arguments(parser) -> None:
    parser.add_argument("--docs", type=int, default=300, help="real documents in the input")
    parser.add_argument("--executor", choices=("local", "ray"), default="local")
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--encoder-max-tokens", type=int, default=128, help="MiniLM word pieces read per document")


def run(args) -> list[dict[str, Any]]:
    from factory.data.curate import FilterConfig, run_filtered_corpus
    from factory.data.dedup import DedupConfig, run_deduped_docs
    from factory.data.documents import write_docs
    from factory.data.quality import QualityConfig
    from factory.stage import StageContext

    df = reference_corpus(args.docs)
    ctx = StageContext(log=lambda msg: None)
    dedup_cfg = DedupConfig(executor=args.executor, num_shards=args.shards)
    filter_cfg = FilterConfig(
        executor=args.executor, num_shards=args.shards,
        heuristics={"max_dup_ngram_frac": {5: 0.35, 6: 0.32, 7: 0.29, 8: 0.27, 9: 0.25, 10: 0.23}},
        quality=QualityConfig(encoder_max_tokens=args.encoder_max_tokens, max_train_docs=300, head_train_docs=600),
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_docs(df, root / "extracted")
        t = time.perf_counter()
        dmeta = run_deduped_docs(dedup_cfg, {"extracted_docs": root / "extracted"}, root / "deduped", ctx)
        t_dedup = time.perf_counter() - t
        fmeta = run_filtered_corpus(filter_cfg, {"deduped_docs": root / "deduped"}, root / "filtered", ctx)
        total = time.perf_counter() - t
    row = {
        "name": "factory", "docs": len(df), "docs_out": fmeta["docs_out"], "executor": args.executor,
        "docs_per_s": round(len(df) / total, 2),
        "dedup_docs_per_s": round(len(df) / t_dedup, 1), "filter_docs_per_s": fmeta["docs_per_s"],
        **{k.removesuffix("_s") + "_s": v for k, v in fmeta["timing_s"].items()},
        "near_dups": dmeta["docs_removed_near_dup"], "lines_removed": dmeta["lines_removed"],
    }
    return [row]
