"""The document table every data stage passes on, stored as parquet parts, and how per-document
work streams over those parts (recipe, "Web Data Curation": every curation step is a map over
shards of the crawl, with a few global steps in between).

``extracted_docs``, ``deduped_docs`` and ``filtered_corpus`` each hold a ``docs.parquet/`` folder
of parts ``part-00000.parquet``, ``part-00001.parquet``, ... with at least the columns of
``DOC_COLUMNS`` (the curation stages add theirs). ``pd.read_parquet(<artifact>/docs.parquet)``
reads the folder as one table (parts in name order), so readers of the whole table need nothing else.

Per-document work maps the input parts, either in this process (``executor: local``: one output
part per input part that keeps a row) or with Ray Data (``executor: ray``: ``read_parquet`` of the
parts -> ``map_batches`` -> ``write_parquet`` into a staging folder), so no document table passes
through the driver. Ray Data may read several small parts in one task, so its output can have
fewer, larger parts than the local one; the documents are the same. The written files are then
named by ``name_parts``: ranked by the smallest document ``id`` they hold (ids are unique in every
document table), so names follow the files' contents and not Ray's task numbering or write uuid,
and a rerun on the same input and cluster writes the same files. Global steps (LSH over all
signatures, line counts, URL dedup) bring only small per-document columns to the driver through
``collect_parts``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

DOCS_DIR = "docs.parquet"
PART_NAME = "part-{:05d}.parquet"
DOC_COLUMNS = ("id", "url", "date", "source", "title", "text", "n_code_blocks", "n_math", "page_domain", "language",
               "language_score")
_INT_COLUMNS = ("n_code_blocks", "n_math")

Executor = Literal["local", "ray"]
# A part map: a picklable DataFrame -> DataFrame function (a Ray task per block under ``ray``).
PartMap = Callable[[pd.DataFrame], pd.DataFrame]


def doc_parts(folder: Path) -> list[Path]:
    """The parts of ``folder/docs.parquet``, absolute, in name order."""
    path = Path(folder).absolute() / DOCS_DIR
    if not path.is_dir():
        raise FileNotFoundError(f"no {DOCS_DIR}/ in {folder}")
    return sorted(path.glob("part-*.parquet"))


def read_docs(folder: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All parts of ``folder/docs.parquet`` as one table, checked to carry the document columns
    (only the requested ones when ``columns`` is given)."""
    parts = doc_parts(folder)
    frames = [pd.read_parquet(p, columns=list(columns) if columns else None) for p in parts]
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(columns or DOC_COLUMNS))
    missing = [c for c in (columns or DOC_COLUMNS) if c not in df.columns]
    if missing:
        raise ValueError(f"{folder}/{DOCS_DIR} lacks document columns {missing}; has {list(df.columns)}")
    return _typed(df)


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    if "text" in df.columns:
        df["text"] = df["text"].fillna("").astype(str)
    for col in _INT_COLUMNS:
        if col in df.columns:
            df[col] = df[col].fillna(0).astype("int64")
    return df


def write_docs(df: pd.DataFrame, folder: Path, num_parts: int = 1) -> list[Path]:
    """Write a document table as ``folder/docs.parquet`` in ``num_parts`` contiguous parts."""
    staging = Path(folder).absolute() / f".{DOCS_DIR}.staging"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    bounds = np.linspace(0, len(df), max(1, min(num_parts, len(df))) + 1).astype(int)
    for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        df.iloc[a:b].reset_index(drop=True).to_parquet(staging / f"{k:06d}.parquet", index=False)
    return name_parts(staging, folder)


def name_parts(staging: Path, folder: Path) -> list[Path]:
    """Move the parquet files of ``staging`` to ``folder/docs.parquet/part-NNNNN.parquet``,
    numbered in order of the smallest ``id`` each holds; empty files are dropped, ``staging`` removed."""
    files = sorted(Path(staging).glob("*.parquet"))
    keyed = []
    for f in files:
        ids = pq.read_table(f, columns=["id"]).column("id")
        if len(ids):
            keyed.append((min(ids.to_pylist()), f))
    out = Path(folder).absolute() / DOCS_DIR
    out.mkdir(parents=True, exist_ok=True)
    parts = []
    for k, (_, f) in enumerate(sorted(keyed)):
        parts.append(out / PART_NAME.format(k))
        f.replace(parts[-1])
    shutil.rmtree(staging)
    return parts


def ensure_ray(num_cpus: int) -> None:
    """Start an embedded local Ray unless one is already up (a stage job has joined its Ray)."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)


def _ray_dataset(fn: PartMap, parts: Sequence[Path], columns: Sequence[str] | None, num_cpus: int):
    """read_parquet of the parts (asking for a block per part; Ray may still group small ones) -> map_batches(fn)."""
    import ray

    ensure_ray(num_cpus)
    ds = ray.data.read_parquet([str(p) for p in parts], columns=list(columns) if columns else None,
                               override_num_blocks=len(parts))
    return ds.map_batches(fn, batch_format="pandas", batch_size=None)


def map_parts(fn: PartMap, parts: Sequence[Path], folder: Path, executor: Executor, num_cpus: int = 2, *,
              columns: Sequence[str] | None = None) -> list[Path]:
    """Map every input part (its ``columns``, all by default) with ``fn`` and write the results as
    ``folder/docs.parquet`` parts (``name_parts``). ``fn`` is row-wise (a batch's output depends
    on its rows only, in order) and keeps the ``id`` column. Returns the written parts."""
    staging = Path(folder).absolute() / f".{DOCS_DIR}.staging"
    shutil.rmtree(staging, ignore_errors=True)  # files of an interrupted attempt would be named as parts
    if executor == "local":
        staging.mkdir(parents=True)
        for k, part in enumerate(parts):
            out = fn(pd.read_parquet(part, columns=list(columns) if columns else None))
            if len(out):
                out.reset_index(drop=True).to_parquet(staging / f"{k:06d}.parquet", index=False)
        return name_parts(staging, folder)
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    from ray.data.datasource import FilenameProvider

    class TaskNames(FilenameProvider):
        """Staging names (Ray wants the write's uuid in them); ``name_parts`` gives the final ones."""

        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{write_uuid}-{task_index:06d}.parquet"

    if parts:
        _ray_dataset(fn, parts, columns, num_cpus).write_parquet(str(staging), filename_provider=TaskNames())
    staging.mkdir(parents=True, exist_ok=True)
    return name_parts(staging, folder)


def collect_parts(fn: PartMap, parts: Sequence[Path], executor: Executor, num_cpus: int = 2, *,
                  columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The concatenated results of ``fn`` over every part, on the driver: for the small
    per-document columns of a global step (signatures, ids and dates, line counts). Row order is
    the parts' order locally and unspecified with Ray: results carry their own keys."""
    if executor == "local":
        frames = [fn(pd.read_parquet(p, columns=list(columns) if columns else None)) for p in parts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    if not parts:
        return pd.DataFrame()
    return _ray_dataset(fn, parts, columns, num_cpus).to_pandas()


def split_shards(df: pd.DataFrame, num_shards: int) -> list[pd.DataFrame]:
    """Contiguous shards (row order kept); never more shards than rows, never an empty one."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    n = max(1, min(num_shards, len(df)))
    bounds = np.linspace(0, len(df), n + 1).astype(int)
    return [df.iloc[a:b].reset_index(drop=True) for a, b in zip(bounds[:-1], bounds[1:], strict=True)
            if b > a or len(df) == 0]


def map_shards(
    fn: Callable[[pd.DataFrame], pd.DataFrame],
    df: pd.DataFrame,
    num_shards: int,
    executor: Executor,
    num_cpus: int = 2,
) -> pd.DataFrame:
    """Apply ``fn`` to contiguous shards of an in-memory table and concatenate the results in shard
    order: ``filtered_corpus``'s sub-stages, which still hold their table on the driver (with
    ``ray`` each shard is one Ray Data block mapped in a task and the results come back)."""
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
