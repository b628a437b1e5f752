"""What every pre-training stage shares (recipe: "Pre-Training Recipe"): reading the stage inputs
(tokenizer and data mix), branching from an upstream checkpoint, and saving the training history.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from factory.model.checkpoint_io import load_args, load_state
from factory.model.tokenizer_files import TokenizerInfo, tokenizer_info
from factory.train.token_shards import read_mix

HISTORY_FILE = "train_history.json"


def write_history(out: Path, history: list[dict[str, float]], name: str = HISTORY_FILE) -> None:
    (out / name).write_text(json.dumps(history, indent=1))


def stage_inputs(inputs: dict[str, Path]) -> tuple[TokenizerInfo, dict[str, Any]]:
    return tokenizer_info(inputs["tokenizer"]), read_mix(inputs["data_mix"])


def branch_from(src: Path, seq_len: int) -> tuple[Any, dict]:
    """Model args and weights of the checkpoint a stage continues from, at ``seq_len`` (0 keeps its own)."""
    args = load_args(src)
    return replace(args, max_seq_len=seq_len or args.max_seq_len), load_state(src)
