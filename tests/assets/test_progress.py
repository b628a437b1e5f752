"""The run's progress lines and the estimate of what is left (assets.progress)."""

import json

from assets.progress import RunProgress, duration, progress_line, time_left

TIMINGS = {"raw_crawl": {"built": 12.0, "reused": 1.0}, "extracted_docs": {"built": 40.0, "reused": 2.0},
           "deduped_docs": {"built": 300.0}}


def test_duration_formats():
    assert [duration(s) for s in (0.4, 12.4, 59.6, 65, 3599, 7625)] == ["0s", "12s", "1m00s", "1m05s", "59m59s",
                                                                        "2h07m"]


def test_time_left_uses_the_expected_kind_and_counts_untimed_assets():
    # extracted_docs will be built (40 s), deduped_docs reused (never timed reused), tokenizer unknown.
    assert time_left(["extracted_docs", "deduped_docs", "tokenizer"], {"extracted_docs"}, TIMINGS) == (40.0, 2)
    assert time_left(["raw_crawl", "deduped_docs"], {"deduped_docs"}, TIMINGS) == (301.0, 0)
    assert time_left([], set(), TIMINGS) == (0.0, 0)


def test_progress_lines():
    assert progress_line(1, 3, "raw_crawl", False, 12.3, (340.0, 0)) == "[1/3] raw_crawl: built in 12s  (~5m40s left)"
    assert progress_line(2, 3, "extracted_docs", True, 0.8, (300.0, 1)) == \
        "[2/3] extracted_docs: reused  (~5m00s left, +1 untimed)"
    assert progress_line(3, 3, "deduped_docs", None, 61, (0.0, 0)) == "[3/3] deduped_docs: FAILED after 1m01s"


def test_run_progress_prints_and_records_timings(tmp_path, capsys):
    timings = tmp_path / "timings" / "smoke.json"
    progress = RunProgress(["raw_crawl", "extracted_docs", "deduped_docs"], {"extracted_docs", "deduped_docs"},
                           timings)
    assert progress.estimate() == (0.0, 3)  # nothing timed yet
    progress.finish("raw_crawl", True, 1.5)
    progress.finish("extracted_docs", False, 42.0)
    assert capsys.readouterr().out.splitlines() == ["[1/3] raw_crawl: reused  (~0s left, +2 untimed)",
                                                    "[2/3] extracted_docs: built in 42s  (~0s left, +1 untimed)"]
    assert json.loads(timings.read_text()) == {"raw_crawl": {"reused": 1.5}, "extracted_docs": {"built": 42.0}}
    # The next run of the same plan knows the two finished assets' times.
    again = RunProgress(["raw_crawl", "extracted_docs", "deduped_docs"], {"extracted_docs"}, timings)
    assert again.estimate() == (43.5, 1)
