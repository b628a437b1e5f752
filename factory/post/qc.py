"""Quality control of SFT data (recipe: "Data Processing and Quality Control", data cleaning).

Rule-based removal of the patterns the recipe names — excessive emojis, excessive exclamation
points, overly apologetic tone — plus empty responses and exact duplicates (same prompt and
whitespace/case-normalized response). Each rule is one function returning a drop reason or None;
the counts of kept and dropped examples per reason are reported. (The recipe's model-based
pruning and semantic dedup need an embedding model per dialog and are not part of this stage.)
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig

# Emoji and pictograph blocks (emoticons, symbols & pictographs, transport, supplemental, dingbats).
_EMOJI = re.compile("[\U0001F300-\U0001FAFF\U00002600-\U000027BF\U0001F600-\U0001F64F\U0001F680-\U0001F6FF]")
_APOLOGY = re.compile(r"^\s*(i'?m (so |very |really )?sorry|i apologi[sz]e|sorry|my apologies|apologies)\b", re.I)


class QCConfig(StageConfig):
    """Thresholds of the rule-based cleaning."""

    max_emojis: int = Field(1, description="Most emojis a response may contain.")
    max_exclamations: int = Field(1, description="Most exclamation points a response may contain.")
    drop_apologetic: bool = Field(True, description="Drop responses that open with an apology.")


def drop_reason(response: str, cfg: QCConfig) -> str | None:
    if not response.strip():
        return "empty"
    if len(_EMOJI.findall(response)) > cfg.max_emojis:
        return "emojis"
    if response.count("!") > cfg.max_exclamations:
        return "exclamations"
    if cfg.drop_apologetic and _APOLOGY.search(response):
        return "apologetic"
    return None


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def clean(examples: Sequence[dict[str, Any]], cfg: QCConfig) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Filter ``{"opening", "response", ...}`` records; returns (kept, counts per outcome)."""
    kept, counts, seen = [], Counter(), set()
    for ex in examples:
        reason = drop_reason(ex["response"], cfg)
        key = (tuple((m["role"], _norm(m["content"])) for m in ex["opening"]), _norm(ex["response"]))
        if reason is None and key in seen:
            reason = "duplicate"
        if reason is None:
            seen.add(key)
            kept.append(ex)
            counts["kept"] += 1
        else:
            counts[f"dropped_{reason}"] += 1
    return kept, dict(sorted(counts.items()))
