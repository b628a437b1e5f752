"""The dedup benchmark on a small planted corpus: both contenders find the planted pairs."""

from __future__ import annotations

import argparse

import pytest

from factory.bench import dedup


def test_planting_and_scoring():
    import pandas as pd

    base = pd.DataFrame({"id": ["a", "b", "c"], "text": ["one two three four five six\n\nseven eight nine ten"] * 3})
    df, pairs = dedup.plant_near_duplicates(base, 2 / 3, seed=0)
    assert len(df) == 5 and len(pairs) == 2 and all(b.startswith(a) for a, b in pairs)
    assert dedup._pair_scores({frozenset(pairs[0])}, pairs) == (1.0, 0.5)


@pytest.mark.slow
def test_bench_rows_on_real_documents():
    parser = argparse.ArgumentParser()
    dedup.add_arguments(parser)
    try:
        rows = dedup.run(parser.parse_args(["--docs", "150"]))
    except FileNotFoundError:
        pytest.skip("Debian documentation packages are not installed")
    by = {r["name"]: r for r in rows}
    assert set(by) == {"factory", "datasketch"}
    assert by["factory"]["recall"] >= 0.8 and by["factory"]["precision"] >= 0.9
    assert by["factory"]["docs_per_s"] > by["datasketch"]["docs_per_s"]
