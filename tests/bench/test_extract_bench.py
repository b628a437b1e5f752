"""bench extract: the benchmark's shingle metric, and a run over a few dev pages when present."""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import pytest

from factory.bench import extract as bench
from factory.bench.codemath import Case, _docstring_formulas, preservation

DEV = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "extraction-dev"


def test_shingle_precision_recall():
    truth = "one two three four five six"  # shingles: 1234 2345 3456
    assert bench.precision_recall(truth, truth) == (1.0, 1.0)
    p, r = bench.precision_recall("one two three four five", truth)  # 1234 2345
    assert (p, r) == (1.0, pytest.approx(2 / 3))
    p, r = bench.precision_recall("menu home one two three four five six", truth)  # + 2 wrong
    assert (p, r) == (pytest.approx(3 / 5), 1.0)
    assert bench.precision_recall("", truth) == (0.0, 0.0)
    assert bench.precision_recall("", "") == (1.0, 1.0)


def test_preservation_counts_exact_code_and_tex():
    case = Case("<html/>", ("def f():\n    return 1",), ("a^2 + b^2",))
    assert preservation(lambda html: "x\ndef f():\n    return 1\n a^2  +  b^2", [case])["code_exact"] == 1.0
    figures = preservation(lambda html: "def f(): return 1", [case])
    assert figures["code_exact"] == 0.0 and figures["math_recall"] == 0.0


def test_docstring_formulas_read_math_directives():
    source = 'class A:\n    """Applies it.\n\n    .. math::\n        y = x^2\n        + 1\n\n    Args:\n    """\n'
    assert _docstring_formulas(source) == [(["Applies it."], "y = x^2 + 1")]


@pytest.mark.skipif(not (DEV / "ground-truth.json").is_file(), reason="extraction dev set not present")
def test_bench_rows_on_a_few_dev_pages(tmp_path):
    truth = json.loads((DEV / "ground-truth.json").read_text())
    keys = sorted(truth)[:4]
    (tmp_path / "html").mkdir()
    for key in keys:
        shutil.copy(DEV / "html" / f"{key}.html.gz", tmp_path / "html")
    (tmp_path / "ground-truth.json").write_text(json.dumps({k: truth[k] for k in keys}))
    cores = os.sched_getaffinity(0)
    rows = bench.run(argparse.Namespace(data=str(tmp_path), repeat=1, codemath=False, max_pages=0))
    assert os.sched_getaffinity(0) == cores  # timed on one core, then the process gets its cores back
    names = [r["name"] for r in rows]
    assert names[0] == "factory" and "resiliparse" in names
    factory = rows[0]
    assert factory["pages"] == 4 and 0.5 < factory["f1"] <= 1.0 and factory["pages_per_s"] > 0
