"""Great Expectations suites pass on good tables and name the expectation a bad table breaks."""

import json

import pandas as pd

from factory.expectations import load_frame, validate


def test_extracted_docs_suite_catches_empty_text_and_duplicate_ids():
    good = pd.DataFrame({"id": ["a", "b"], "url": ["https://x/a", "https://x/b"], "text": ["one", "two"],
                         "n_code_blocks": [0, 2], "n_math": [1, 0], "page_domain": ["math", "code"],
                         "language": ["en", "de"], "language_score": [0.9, 1.0]})
    assert validate("extracted_docs", good).success
    bad = good.assign(id=["a", "a"], url=["https://x/a", "x/b"], text=["one", ""], page_domain=["math", "poetry"])
    result = validate("extracted_docs", bad)
    assert not result.success
    assert {f["expectation"] for f in result.failures} >= {
        "expect_column_values_to_be_unique", "expect_column_value_lengths_to_be_between",
        "expect_column_values_to_match_regex", "expect_column_values_to_be_in_set"}
    # deduped_docs holds the same document table: same contract
    assert validate("deduped_docs", good).success and not validate("deduped_docs", bad).success


def test_filtered_corpus_suite_checks_language_codes_and_score_ranges():
    row = {"id": "a", "text": "t", "language": "en", "quality_fasttext": 0.5, "quality_transformer": 0.2,
           "domain": "code", "topic": "computing"}
    assert validate("filtered_corpus", pd.DataFrame([row])).success
    broken = pd.DataFrame([{**row, "language": "English", "quality_fasttext": 1.5}])
    failed = {f["kwargs"]["column"] for f in validate("filtered_corpus", broken).failures}
    assert failed == {"language", "quality_fasttext"}


def test_preference_suite_rejects_misordered_and_identical_pairs(tmp_path):
    def record(scores, texts, strength="better"):
        return {"prompt": {"prompt": "What is 1 + 2?", "task": "arithmetic"}, "strength": strength,
                "responses": [{"text": t, "score": s} for t, s in zip(texts, scores, strict=True)]}

    (tmp_path / "preferences.jsonl").write_text(json.dumps(record([1.0, 0.0], ["3", "4"])) + "\n")
    assert validate("preference_data", load_frame("preference_data", tmp_path)).success
    rows = [record([0.0, 1.0], ["4", "3"]), record([1.0, 0.0], ["3", "3"]), record([1.0, 0.0], ["3", "4"], "meh")]
    (tmp_path / "preferences.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    result = validate("preference_data", load_frame("preference_data", tmp_path))
    assert not result.success
    assert {f["kwargs"]["column"] for f in result.failures} == {"ranked_best_first", "chosen_differs_from_rejected",
                                                                "strength"}
