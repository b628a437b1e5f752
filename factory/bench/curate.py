"""Curation throughput of the whole data stage: WARC crawl -> extracted -> deduped -> filtered, in
documents per second on this machine.

The four data stages run as the pipeline runs them (their ``run_*`` functions, with a profile's
configs: ``demo`` by default), on the embedded sample crawl (real documentation pages captured
into WARC shards; ``--pages-per-source`` sizes it) and without the profile's inbox. The row gives
the whole chain's rate (pages read per second of all four stages), each stage's seconds and rate
(its input documents per second), the filtered_corpus sub-stage timings and what was kept.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

DATA_STAGES = ("raw_crawl", "extracted_docs", "deduped_docs", "filtered_corpus")


def add_arguments(parser) -> None:
    parser.add_argument("--profile", default="demo", help="profile whose data-stage configs are used")
    parser.add_argument("--pages-per-source", type=int, default=100, help="sample crawl: documents per source")
    parser.add_argument("--executor", choices=("local", "ray"), default="local",
                        help="executor of the per-document stages (ray: Ray Data on the embedded local Ray)")


def run(args) -> list[dict[str, Any]]:
    from factory.config import load_profile
    from factory.core.stage import StageContext
    from factory.stages import stage_config, stage_specs

    profile = load_profile(args.profile)
    specs = {s.asset: s for s in stage_specs(profile) if s.asset in DATA_STAGES}
    overrides = {
        "raw_crawl": {"inbox": "", "max_pages_per_source": args.pages_per_source},
        **{asset: {"executor": args.executor} for asset in DATA_STAGES[1:]},
    }
    ctx = StageContext(log=lambda msg: None)
    seconds: dict[str, float] = {}
    meta: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for asset in DATA_STAGES:
            spec = specs[asset]
            cfg = stage_config(spec, profile).model_copy(update=overrides[asset])
            start = time.perf_counter()
            meta[asset] = spec.load_function()(cfg, {i: root / i for i in spec.inputs}, root / asset, ctx)
            seconds[asset] = time.perf_counter() - start
    pages = meta["extracted_docs"]["pages_in"]
    docs_in = {"extracted_docs": pages, "deduped_docs": meta["deduped_docs"]["docs_in"],
               "filtered_corpus": meta["filtered_corpus"]["docs_in"]}
    total = sum(seconds.values())
    row: dict[str, Any] = {
        "name": "factory", "profile": args.profile, "executor": args.executor, "pages": pages,
        "docs_out": meta["filtered_corpus"]["docs_out"], "seconds": round(total, 1),
        "docs_per_s": round(pages / total, 2),
        "raw_crawl_s": round(seconds["raw_crawl"], 1),
    }
    for asset, n in docs_in.items():
        row[f"{asset}_s"] = round(seconds[asset], 1)
        row[f"{asset}_docs_per_s"] = round(n / seconds[asset], 1)
    row.update({f"filter_{name}_s": step["seconds"] for name, step in meta["filtered_corpus"]["steps"].items()})
    return [row]
