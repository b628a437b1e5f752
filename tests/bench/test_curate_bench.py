"""bench curate: the four data stages run from a sample crawl, and the row's rates add up."""

from __future__ import annotations

import argparse

import pytest

from factory.bench import curate
from factory.data.sample_crawl import PYTHON_DOCS_DIR


@pytest.mark.slow
def test_curate_bench_runs_the_whole_data_stage():
    if not PYTHON_DOCS_DIR.is_dir():
        pytest.skip("Debian documentation packages are not installed")
    (row,) = curate.run(argparse.Namespace(profile="smoke", pages_per_source=15, executor="local"))
    assert row["name"] == "factory" and row["pages"] >= 30
    assert 0 < row["docs_out"] <= row["pages"]
    stage_seconds = row["raw_crawl_s"] + sum(row[f"{s}_s"] for s in curate.DATA_STAGES[1:])
    assert row["seconds"] == pytest.approx(stage_seconds, abs=0.3)
    assert row["docs_per_s"] == pytest.approx(row["pages"] / row["seconds"], rel=0.05)
    assert row["extracted_docs_docs_per_s"] == pytest.approx(row["pages"] / row["extracted_docs_s"], rel=0.1)
