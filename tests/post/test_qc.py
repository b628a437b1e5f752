"""Rule-based SFT data cleaning: emojis, exclamation points, apologies, empties, duplicates."""

from factory.post.qc import QCConfig, clean

P = [{"role": "user", "content": "p"}]
Q = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "p"}]  # another dialog


def test_rules_drop_and_count_by_reason():
    rows = [
        {"opening": P, "response": "85"},
        {"opening": P, "response": " 85 "},  # duplicate after normalization
        {"opening": Q, "response": "85"},  # same answer in another dialog is kept
        {"opening": P, "response": "Great!!! 85"},
        {"opening": P, "response": "85 \U0001F600\U0001F389"},
        {"opening": P, "response": "I'm so sorry, 85"},
        {"opening": P, "response": "   "},
    ]
    kept, counts = clean(rows, QCConfig())
    assert [(r["opening"], r["response"]) for r in kept] == [(P, "85"), (Q, "85")]
    assert counts == {"kept": 2, "dropped_duplicate": 1, "dropped_exclamations": 1, "dropped_emojis": 1,
                      "dropped_apologetic": 1, "dropped_empty": 1}
    kept, _ = clean(rows, QCConfig(max_emojis=5, max_exclamations=5, drop_apologetic=False))
    assert len(kept) == 5
