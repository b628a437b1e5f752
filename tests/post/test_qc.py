"""Rule-based SFT data cleaning: emojis, exclamation points, apologies, empties, duplicates."""

from factory.post.qc import QCConfig, clean


def test_rules_drop_and_count_by_reason():
    rows = [
        {"prompt": "p", "response": "85"},
        {"prompt": "p", "response": " 85 "},  # duplicate after normalization
        {"prompt": "q", "response": "85"},  # same answer to another prompt is kept
        {"prompt": "p", "response": "Great!!! 85"},
        {"prompt": "p", "response": "85 \U0001F600\U0001F389"},
        {"prompt": "p", "response": "I'm so sorry, 85"},
        {"prompt": "p", "response": "   "},
    ]
    kept, counts = clean(rows, QCConfig())
    assert [r["prompt"] + r["response"] for r in kept] == ["p85", "q85"]
    assert counts == {"kept": 2, "dropped_duplicate": 1, "dropped_exclamations": 1, "dropped_emojis": 1,
                      "dropped_apologetic": 1, "dropped_empty": 1}
    kept, _ = clean(rows, QCConfig(max_emojis=5, max_exclamations=5, drop_apologetic=False))
    assert len(kept) == 5
