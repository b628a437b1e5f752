"""The document table every data stage passes on, stored as parquet parts, and how per-document
work streams over those parts (recipe, "Web Data Curation": every curation step is a map over
shards of the crawl, with a few global steps in between).

``extracted_docs``, ``deduped_docs`` and ``filtered_corpus`` each hold a ``docs.parquet/`` folder
of parts ``part-00000.parquet``, ``part-00001.parquet``, ... with at least the columns of
``DOC_COLUMNS`` (the curation stages add theirs). ``pd.read_parquet(<artifact>/docs.parquet)``
reads the folder as one table (parts in name order), so readers of the whole table need nothing else.

Per-document work maps the input parts, either in this process (``executor: local``: one output part
per input part that keeps a row) or with Ray Data (``executor: ray``: ``read_parquet`` of the parts
-> ``map_batches`` -> ``write_parquet`` into a staging folder), so no document table passes through
the driver. Ray Data may read several small parts in one task, in any order, so each output row is
tagged with its input part's rank and the write is partitioned by it: the output has one part per
input part that keeps a row (more when Ray split a large one), as the local one, and ``name_parts``
numbers them in the input's order, not by Ray's task numbering or write uuid, so a rerun on the same
input writes the same files. Global steps (LSH over all signatures, line counts, URL dedup, the fits
of ``filtered_corpus``) bring only small per-document columns, or a bounded sample, to the driver
through ``collect_parts``, whose rows come in the parts' order with either executor.
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
    return typed_docs(df)


def require_columns(parts: Sequence[Path], columns: Sequence[str] = DOC_COLUMNS) -> None:
    """Raise unless every part carries ``columns`` (read from the parts' footers, not their rows)."""
    for part in parts:
        names = pq.read_schema(part).names
        missing = [c for c in columns if c not in names]
        if missing:
            raise ValueError(f"{part} lacks document columns {missing}; has {names}")


def typed_docs(df: pd.DataFrame) -> pd.DataFrame:
    """A document table (or part) with a fresh index, ``text`` as strings (null: '') and the
    count columns as int64."""
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


def name_parts(staging: Path, folder: Path, by_name: bool = False) -> list[Path]:
    """Move the parquet files of ``staging`` to ``folder/docs.parquet/part-NNNNN.parquet``,
    numbered in order of the smallest ``id`` each holds (``by_name``: of their file names, a part
    map's input order); empty files are dropped, ``staging`` removed."""
    files = sorted(Path(staging).glob("*.parquet"))
    keyed = []
    for f in files:
        if pq.ParquetFile(f).metadata.num_rows:
            keyed.append((f.name if by_name else min(pq.read_table(f, columns=["id"]).column("id").to_pylist()), f))
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


_PART_COLUMN = "path"  # the column Ray's read_parquet(include_paths=True) names each row's file in
_RANK_COLUMN = "_part"  # a map's output rows: the rank of their input part (a Hive partition of the write)


def _each_part(fn: PartMap, parts: Sequence[Path]) -> PartMap:
    """``fn`` applied to each input part of a Ray block separately, each output row tagged with its
    part's rank in ``parts`` (``_RANK_COLUMN``, by which the write partitions and a collect sorts):
    Ray may group small parts into one block, in any order, and a part map need not be row-wise
    (the audit keeps a part's first documents of each reason), so a grouped block must not change
    its output."""
    rank = {str(p): k for k, p in enumerate(parts)}

    def apply(block: pd.DataFrame) -> pd.DataFrame:
        outputs = [fn(g.drop(columns=_PART_COLUMN).reset_index(drop=True)).assign(**{_RANK_COLUMN: rank[str(path)]})
                   for path, g in block.groupby(_PART_COLUMN, sort=False)]
        if not outputs:  # an empty block
            return fn(block.drop(columns=_PART_COLUMN)).assign(**{_RANK_COLUMN: pd.Series(dtype="int64")})
        return pd.concat(outputs, ignore_index=True)

    return apply


def _ray_dataset(fn: PartMap, parts: Sequence[Path], columns: Sequence[str] | None, num_cpus: int):
    """read_parquet of the parts (asking for a block per part; Ray may still group small ones, so each
    row carries its file and ``fn`` runs per part) -> map_batches(fn), each output row tagged with its
    input part's rank: the write partitions by it and a collect sorts by it, since neither the blocks'
    grouping nor their order follows the parts' (measured: 1 run in 3 out of order on 2 cores)."""
    import ray

    ensure_ray(num_cpus)
    ds = ray.data.read_parquet([str(p) for p in parts], columns=list(columns) if columns else None,
                               override_num_blocks=len(parts), include_paths=True)
    return ds.map_batches(_each_part(fn, parts), batch_format="pandas", batch_size=None)


def map_parts(fn: PartMap, parts: Sequence[Path], folder: Path, executor: Executor, num_cpus: int = 2, *,
              columns: Sequence[str] | None = None) -> list[Path]:
    """Map every input part (its ``columns``, all by default) with ``fn`` and write the results as
    ``folder/docs.parquet`` parts (``name_parts``), replacing any parts there. ``fn`` is row-wise
    (a batch's output depends on its rows only, in order) and keeps the ``id`` column. Returns the
    written parts."""
    staging = Path(folder).absolute() / f".{DOCS_DIR}.staging"
    # Files of an interrupted attempt would be named as parts; an earlier run's parts (a stage's
    # work folder) would stay beside fewer new ones.
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(Path(folder).absolute() / DOCS_DIR, ignore_errors=True)
    if executor == "local":
        staging.mkdir(parents=True)
        for k, part in enumerate(parts):
            out = fn(pd.read_parquet(part, columns=list(columns) if columns else None))
            if len(out):
                out.reset_index(drop=True).to_parquet(staging / f"{k:06d}.parquet", index=False)
        return name_parts(staging, folder, by_name=True)
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    from ray.data.datasource import FilenameProvider

    class TaskNames(FilenameProvider):
        """Staging names (Ray wants the write's uuid in them); ``name_parts`` gives the final ones."""

        def get_filename_for_task(self, write_uuid: str, task_index: int) -> str:
            return f"{write_uuid}-{task_index:06d}.parquet"

    if parts:
        _ray_dataset(fn, parts, columns, num_cpus).write_parquet(str(staging), partition_cols=[_RANK_COLUMN],
                                                                 filename_provider=TaskNames())
    staging.mkdir(parents=True, exist_ok=True)
    # One folder per input part (_part=K), each with the files of its blocks (a large part may be read
    # as several): flattened as K-then-task names, so that the parts come out in the input's order.
    folders = sorted(staging.glob(f"{_RANK_COLUMN}=*"), key=lambda d: int(d.name.partition("=")[2]))
    for folder_k in folders:
        k = int(folder_k.name.partition("=")[2])
        for j, f in enumerate(sorted(folder_k.glob("*.parquet"))):
            f.replace(staging / f"{k:06d}-{j:06d}.parquet")
        shutil.rmtree(folder_k)
    return name_parts(staging, folder, by_name=True)


def collect_parts(fn: PartMap, parts: Sequence[Path], executor: Executor, num_cpus: int = 2, *,
                  columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The concatenated results of ``fn`` over every part, on the driver: for the small
    per-document columns of a global step (signatures, ids and dates, line counts) or a bounded
    sample. Rows come in the parts' order (and each part's in ``fn``'s) with either executor."""
    if executor == "local":
        frames = [fn(pd.read_parquet(p, columns=list(columns) if columns else None)) for p in parts]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if executor != "ray":
        raise ValueError(f"unknown executor {executor!r}; use 'local' or 'ray'")
    if not parts:
        return pd.DataFrame()
    rows = _ray_dataset(fn, parts, columns, num_cpus).to_pandas()
    if _RANK_COLUMN not in rows:  # nothing came back
        return rows
    order = np.argsort(rows[_RANK_COLUMN].to_numpy(), kind="stable")  # a part's rows keep their order
    return rows.iloc[order].drop(columns=_RANK_COLUMN).reset_index(drop=True)
