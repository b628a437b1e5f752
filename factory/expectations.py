"""Great Expectations suites for the data artifacts (docs/architecture.md, "Data checks").

Each suite validates a pandas DataFrame read from an artifact and returns a ``SuiteResult``. The
Dagster layer runs them as blocking asset checks, so a failing suite stops everything downstream.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from factory.data.page_routing import DOMAINS
from factory.post.annotator import STRENGTHS

LANGUAGE_CODE = r"^[a-z]{2,3}(_[A-Za-z]{2,4})?$"


@dataclass
class SuiteResult:
    suite: str
    success: bool
    rows: int
    failures: list[dict[str, Any]] = field(default_factory=list)


_RUNS = itertools.count()


@lru_cache(maxsize=1)
def _context():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = {"globally": False}
    return context


def _expectations(name: str) -> list:
    import great_expectations.expectations as gxe

    if name in ("extracted_docs", "deduped_docs"):  # the document table before filtering
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValuesToNotBeNull(column="text"),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToBeUnique(column="url"),
            gxe.ExpectColumnValuesToMatchRegex(column="url", regex=r"^[a-z][a-z0-9+.-]*://"),
            gxe.ExpectColumnValuesToBeInSet(column="page_domain", value_set=list(DOMAINS)),
            gxe.ExpectColumnValuesToMatchRegex(column="language", regex=LANGUAGE_CODE),
            gxe.ExpectColumnValuesToBeBetween(column="language_score", min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="n_code_blocks", min_value=0),
            gxe.ExpectColumnValuesToBeBetween(column="n_math", min_value=0),
        ]
    if name == "filtered_corpus":
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValueLengthsToBeBetween(column="text", min_value=1),
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            gxe.ExpectColumnValuesToMatchRegex(column="language", regex=LANGUAGE_CODE),
            gxe.ExpectColumnValuesToBeBetween(column="quality_fasttext", min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeBetween(column="quality_transformer", min_value=0.0, max_value=1.0),
            gxe.ExpectColumnValuesToBeInSet(column="domain", value_set=list(DOMAINS)),
            gxe.ExpectColumnValuesToNotBeNull(column="topic"),
        ]
    if name == "preference_data":
        return [
            gxe.ExpectTableRowCountToBeBetween(min_value=1),
            gxe.ExpectColumnValueLengthsToBeBetween(column="prompt", min_value=1),
            gxe.ExpectColumnValuesToBeInSet(column="strength", value_set=list(STRENGTHS)),
            gxe.ExpectColumnValuesToBeBetween(column="n_responses", min_value=2, max_value=3),
            gxe.ExpectColumnValuesToBeInSet(column="ranked_best_first", value_set=[True]),
            gxe.ExpectColumnValuesToBeInSet(column="chosen_differs_from_rejected", value_set=[True]),
        ]
    raise KeyError(f"no expectation suite named {name!r}")


def validate(name: str, df: pd.DataFrame) -> SuiteResult:
    """Run suite ``name`` on ``df``."""
    import great_expectations as gx

    context = _context()
    source = context.data_sources.add_or_update_pandas(f"{name}_source")
    try:
        asset = source.get_asset(f"{name}_frame")
    except LookupError:
        asset = source.add_dataframe_asset(f"{name}_frame")
    run = next(_RUNS)
    batch_definition = asset.add_batch_definition_whole_dataframe(f"{name}_{run}")
    suite = gx.ExpectationSuite(name=f"{name}_suite_{run}")
    for expectation in _expectations(name):
        suite.add_expectation(expectation)
    suite = context.suites.add(suite)
    validation = gx.ValidationDefinition(data=batch_definition, suite=suite, name=f"{suite.name}_validation")
    result = validation.run(batch_parameters={"dataframe": df})
    failures = [
        {"expectation": r.expectation_config.type,
         "kwargs": {k: v for k, v in r.expectation_config.kwargs.items() if k != "batch_id"},
         "unexpected": (r.result or {}).get("unexpected_count")}
        for r in result.results
        if not r.success
    ]
    return SuiteResult(name, bool(result.success), len(df), failures)


def load_frame(name: str, folder: Path) -> pd.DataFrame:
    """The table a suite checks, read from an artifact folder."""
    if name == "preference_data":
        return preference_frame(folder / "preferences.jsonl")
    return pd.read_parquet(folder / "docs.parquet")


def preference_frame(path: Path) -> pd.DataFrame:
    """One row per ranking: the prompt, its strength, and derived facts about its ordered responses.

    A ranking lists its responses best first (edited > chosen > rejected), each with the
    annotator's score.
    """
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        responses = record["responses"]
        scores = [r["score"] for r in responses]
        rows.append({
            "prompt": record["prompt"]["prompt"],
            "task": record["prompt"]["task"],
            "strength": record["strength"],
            "n_responses": len(responses),
            # consecutive pairs: scores[1:] is one shorter by design
            "ranked_best_first": all(a >= b for a, b in zip(scores, scores[1:], strict=False)),
            "chosen_differs_from_rejected": responses[0]["text"] != responses[-1]["text"],
        })
    return pd.DataFrame(rows)


SUITES = ("extracted_docs", "deduped_docs", "filtered_corpus", "preference_data")
