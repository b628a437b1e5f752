from collections import Counter

import pytest

from factory.safety.seed_prompts import ATTACK_LABELS, REQUESTS, attack_examples, guard_examples, is_held_out, split
from factory.safety.taxonomy import CODES


def test_every_category_has_unsafe_requests_and_safe_lookalikes():
    assert set(REQUESTS) == set(CODES)
    for unsafe, safe in REQUESTS.values():
        assert len(unsafe) == len(safe) >= 8
        assert not set(unsafe) & set(safe)


def test_guard_seed_set_is_balanced_per_category():
    examples = guard_examples(per_category=10, responses_per_category=4, seed=0)
    assert len(examples) == 14 * (20 + 4)
    prompts_only = [e for e in examples if e.response is None]
    unsafe_by_cat = Counter(e.categories[0] for e in prompts_only if e.unsafe)
    assert unsafe_by_cat == dict.fromkeys(CODES, 10)
    assert sum(not e.unsafe for e in prompts_only) == 14 * 10
    kinds = Counter(e.kind for e in examples)
    assert kinds == {"unsafe_prompt": 140, "lookalike_prompt": 140, "compliance": 28, "refusal": 14, "helpful": 14}
    # safe examples never carry categories; unsafe ones carry exactly their own
    assert all(not e.categories for e in examples if not e.unsafe)
    # within a category, no unsafe prompt repeats while the framing x request pool lasts
    assert len({e.text for e in prompts_only}) == len(prompts_only)


def test_seed_set_is_deterministic_and_seeded():
    a = guard_examples(6, 2, seed=0)
    assert a == guard_examples(6, 2, seed=0)
    assert a != guard_examples(6, 2, seed=1)
    assert attack_examples(9, seed=3) == attack_examples(9, seed=3)


def test_attack_examples_balanced():
    examples = attack_examples(per_class=20)
    assert Counter(e.label for e in examples) == dict.fromkeys(ATTACK_LABELS, 20)
    injections = [e.text for e in examples if e.label == "injection"]
    assert all("\n" in t or ":" in t for t in injections)  # embedded in a document, not a bare command


def test_split_is_a_stable_hash_of_the_text():
    examples = guard_examples(12, 4)
    train, dev, held = split(examples, 0.2, 0.2)
    assert len(train) + len(dev) + len(held) == len(examples)
    assert 0.1 < len(held) / len(examples) < 0.3 and 0.1 < len(dev) / len(examples) < 0.3
    texts = [{e.text for e in part} for part in (train, dev, held)]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]
    # growing the set never moves an example across the split
    bigger = [{e.text for e in part} for part in split(guard_examples(24, 8), 0.2, 0.2)]
    assert all(not is_held_out(t, 0.2) for t in bigger[0] | bigger[1])
    shared = bigger[0] | bigger[1] | bigger[2]
    assert all(texts[i] & shared <= bigger[i] for i in range(3)) and texts[1] & shared
    with pytest.raises(ValueError, match="empty part"):
        split(examples[:3], 0.2, 0.2)
