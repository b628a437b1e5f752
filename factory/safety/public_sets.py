"""Public safety prompt sets for Llama Guard (recipe: "Safety characteristics", "Llama Guard 3": the
guard is trained and measured on real harmful and benign prompts; docs/architecture.md, "Safety").

A folder of JSONL files, one per set, each row ``{"text", "label_safe", "categories", "source",
"mapping"}`` (categories are Llama Guard 3 codes S1-S14; ``mapping`` says how far to trust them:
exact | approx | keyword | none | na) — the layout of ``../shared/data/safety``, whose README names
each set's origin and license; the files stay out of the repository. Sets whose label means
something else (bipia: "contains a prompt injection", Prompt Guard's data) are not read here.

Rows become ``GuardExample``s of kind ``public:<set>``. Categories are kept for training when the
mapping is exact or approximate; per-category recall is reported on exact rows only. Rows are split
into train / dev / test per stratum (set, label, first category) by a seeded shuffle, then every
train row that is a near duplicate (Jaccard ≥ ``near_dup_threshold`` on word 3-grams, computed
exactly) of a dev or test row is dropped, and every dev row near a test row, with the counts reported.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from factory.data.dedup import shingles
from factory.safety.seed_prompts import GuardExample
from factory.safety.taxonomy import CODES

GUARD_SETS = ("do_not_answer", "harmbench", "strongreject", "forbidden_questions", "openai_moderation",
              "cse_mitre_frr")
TRUSTED_MAPPINGS = ("exact", "approx")  # category codes kept for training
SHINGLE_WORDS = 3  # prompts are short (median 50-500 characters): 5-word shingles would miss rephrasings


def set_files(folder: Path) -> list[Path]:
    """The guard's JSONL files present in ``folder`` (none when it is absent)."""
    return [folder / f"{name}.jsonl" for name in GUARD_SETS if (folder / f"{name}.jsonl").is_file()]


def load_public(folder: Path) -> tuple[list[GuardExample], Counter]:
    """Every usable row of the guard's sets in ``folder``, and the rows skipped by reason."""
    examples, skipped = [], Counter()
    for path in set_files(folder):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, safe = str(row["text"]).strip(), row["label_safe"]
            except (json.JSONDecodeError, KeyError, TypeError):
                skipped["malformed_row"] += 1
                continue
            if not text or not isinstance(safe, bool):
                skipped["no_text_or_label"] += 1
                continue
            mapping = str(row.get("mapping") or "none")
            codes = tuple(c for c in row.get("categories") or () if c in CODES)
            keep = codes if not safe and mapping in TRUSTED_MAPPINGS else ()
            examples.append(GuardExample(text, None, not safe, keep, f"public:{path.stem}",
                                         mapping if keep else "none"))
    return examples, skipped


def near_duplicates(queries: list[GuardExample], targets: list[GuardExample], threshold: float) -> set[int]:
    """Indexes of ``queries`` whose text is a near duplicate of some target's, exactly: every pair that
    shares a word 3-gram (an inverted index) has its Jaccard similarity computed. Exact rather than
    MinHash LSH, which missed pairs just above the threshold here (0.71 at a 0.7 threshold with LSH
    proposing from 0.5): a split must not leak, and thousands of short prompts take seconds."""
    target_grams = [shingles(t.text, SHINGLE_WORDS) for t in targets]
    index: dict[bytes, list[int]] = defaultdict(list)
    for j, grams in enumerate(target_grams):
        for gram in grams:
            index[gram].append(j)
    found = set()
    for i, q in enumerate(queries):
        grams = shingles(q.text, SHINGLE_WORDS)
        candidates = {j for gram in grams for j in index.get(gram, ())}
        if any(len(grams & target_grams[j]) / len(grams | target_grams[j]) >= threshold for j in candidates):
            found.add(i)
    return found


def split_public(examples: list[GuardExample], dev_fraction: float, test_fraction: float, seed: int,
                 near_dup_threshold: float) -> tuple[list[GuardExample], list[GuardExample], list[GuardExample],
                                                     dict[str, Any]]:
    """(train, dev, test, counts): stratified by (set, label, first category); near duplicates of a
    held-out row leave train (and of a test row leave dev). Identical texts land in one part."""
    strata: dict[tuple, list[GuardExample]] = defaultdict(list)
    seen: set[str] = set()
    exact_dups = 0
    for e in examples:
        key = " ".join(e.text.lower().split())
        if key in seen:
            exact_dups += 1
            continue
        seen.add(key)
        strata[(e.kind, e.unsafe, e.categories[:1])].append(e)
    rng = random.Random(seed)
    train, dev, test = [], [], []
    for key in sorted(strata, key=str):
        rows = strata[key]
        rng.shuffle(rows)
        n_test, n_dev = round(len(rows) * test_fraction), round(len(rows) * dev_fraction)
        test += rows[:n_test]
        dev += rows[n_test : n_test + n_dev]
        train += rows[n_test + n_dev :]
    near_test_in_dev = near_duplicates(dev, test, near_dup_threshold)
    dev = [e for i, e in enumerate(dev) if i not in near_test_in_dev]
    near_held_in_train = near_duplicates(train, dev + test, near_dup_threshold)
    train = [e for i, e in enumerate(train) if i not in near_held_in_train]
    parts = {"train": train, "dev": dev, "test": test}
    counts = {"rows": len(examples), "dropped_exact_duplicates": exact_dups,
              "dropped_train_near_held_out": len(near_held_in_train), "dropped_dev_near_test": len(near_test_in_dev),
              **{name: len(part) for name, part in parts.items()},
              "per_set": {k: {name: sum(e.kind == k for e in part) for name, part in parts.items()}
                          for k in sorted({e.kind for e in examples})}}
    return train, dev, test, counts
