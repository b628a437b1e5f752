"""The document table every data stage passes on, and how per-document work is spread over shards.

``extracted_docs``, ``deduped_docs`` and ``filtered_corpus`` each hold one ``docs.parquet`` with at
least the columns of ``DOC_COLUMNS`` (the curation stages add theirs). Per-document work runs on
contiguous shards of that table, either in-process (``executor: local``) or as Ray Data map tasks
(``executor: ray``); both paths call the same function on the same shards, so results agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

DOCS_FILE = "docs.parquet"
DOC_COLUMNS = ("id", "url", "date", "source", "title", "text", "n_code_blocks", "n_math", "page_domain", "language",
               "language_score")
_INT_COLUMNS = ("n_code_blocks", "n_math")

Executor = Literal["local", "ray"]


def read_docs(folder: Path) -> pd.DataFrame:
    """Read ``folder/docs.parquet`` and check it carries the document columns."""
    path = Path(folder) / DOCS_FILE
    if not path.exists():
        raise FileNotFoundError(f"no {DOCS_FILE} in {folder}")
    df = pd.read_parquet(path)
    missing = [c for c in DOC_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} lacks document columns {missing}; has {list(df.columns)}")
    df = df.reset_index(drop=True)
    df["text"] = df["text"].fillna("").astype(str)
    for col in _INT_COLUMNS:
        df[col] = df[col].fillna(0).astype("int64")
    return df


def write_docs(df: pd.DataFrame, folder: Path, name: str = DOCS_FILE) -> Path:
    """Write a document table (index dropped) as ``folder/name``."""
    path = Path(folder) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    df.reset_index(drop=True).to_parquet(path, index=False)
    return path


def split_shards(df: pd.DataFrame, num_shards: int) -> list[pd.DataFrame]:
    """Contiguous shards (row order kept); never more shards than rows, never an empty one."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    n = max(1, min(num_shards, len(df)))
    bounds = np.linspace(0, len(df), n + 1).astype(int)
    return [df.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a or len(df) == 0]


def ensure_ray(num_cpus: int) -> None:
    """Start an embedded local Ray unless one is already up (RAY_ADDRESS joins a cluster)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def map_shards(
    fn: Callable[[pd.DataFrame], pd.DataFrame],
    df: pd.DataFrame,
    num_shards: int,
    executor: Executor,
    num_cpus: int = 2,
) -> pd.DataFrame:
    """Apply ``fn`` (a picklable DataFrame -> DataFrame map) to each shard and concatenate the
    results in shard order. With ``ray`` each shard is one Ray Data block mapped in a task."""
    shards = split_shards(df, num_shards)
    if executor == "local":
        parts = [fn(s) for s in shards]
        return pd.concat(parts, ignore_index=True) if parts else fn(df)
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    import ray

    ensure_ray(num_cpus)
    # Ray Data may reorder (or split) blocks: each batch carries the global position of its first
    # row, so sorting by (first position, row within the batch's output) restores shard order.
    # The cumulative sum has one more entry (the total) than there are shards: strict=False drops it.
    tagged = [s.assign(_pos=np.arange(len(s)) + start)
              for s, start in zip(shards, np.cumsum([0] + [len(s) for s in shards]), strict=False)]

    def run(batch: pd.DataFrame) -> pd.DataFrame:
        start = int(batch["_pos"].min()) if len(batch) else -1
        res = fn(batch.drop(columns="_pos").reset_index(drop=True))
        return res.assign(_start=start, _row=np.arange(len(res)))

    ds = ray.data.from_pandas(tagged).map_batches(run, batch_format="pandas", batch_size=None)
    out = ds.to_pandas()
    if out.empty:
        return fn(df.iloc[:0])
    return out.sort_values(["_start", "_row"], kind="stable").drop(columns=["_start", "_row"]).reset_index(drop=True)
