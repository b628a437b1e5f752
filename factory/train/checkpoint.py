"""Training checkpoints that survive interruptions (recipe: "Infrastructure, Scaling, and Efficiency").

A checkpoint is a folder ``step-NNNNNNNN`` holding the model and optimizer state, the RNG state and
the data position (samples consumed), plus a ``manifest.json`` with the sha256 of every file under
it (sub-folders included: a DeepSpeed engine writes its ZeRO shards into ``deepspeed/``). It is
written into a temporary folder and renamed into place, so a crash mid-write never leaves a
half-written checkpoint that looks complete; on resume, checkpoints whose files do not match their
manifest are skipped. Only the last ``keep_last`` checkpoints are kept.

Writing is split in ``begin_checkpoint`` / ``commit_checkpoint`` so several ranks can write their
shards into one temporary folder before rank 0 seals it. ``AsyncCheckpointer`` copies the state to
CPU memory on the training thread and writes it on a background thread, so the (bursty, in the
recipe's words) checkpoint write overlaps the next training steps.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import torch

from factory.core.files import sha256_file

PREFIX = "step-"
MANIFEST = "manifest.json"


def _step_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:08d}"


def begin_checkpoint(root: Path, step: int) -> Path:
    """A fresh, empty temporary folder for checkpoint ``step`` (its name is a function of the step,
    so every rank of a distributed run finds it without communication)."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a writer that died mid-write
    tmp.mkdir()
    return tmp


def commit_checkpoint(root: Path, step: int, tmp: Path, keep_last: int = 2) -> Path:
    """Hash every file under ``tmp`` into its manifest, rename it into place, prune old checkpoints."""
    files = {
        p.relative_to(tmp).as_posix(): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()
    }
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=2))
    final = _step_dir(root, step)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep_last: int = 2) -> Path:
    """Atomically write ``state`` (one ``NAME.pt`` per key, saved with torch.save) as checkpoint ``step``."""
    tmp = begin_checkpoint(root, step)
    for name, value in state.items():
        torch.save(value, tmp / f"{name}.pt")
    return commit_checkpoint(root, step, tmp, keep_last)


def list_checkpoints(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def is_intact(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.exists():
        return False
    try:
        files = json.loads(manifest.read_text())["files"]
    except (json.JSONDecodeError, KeyError):
        return False
    return all((folder / n).is_file() and sha256_file(folder / n) == h for n, h in files.items())


def latest_checkpoint(root: Path) -> Path | None:
    """Newest checkpoint whose files match its manifest (corrupt ones are skipped)."""
    for folder in reversed(list_checkpoints(root)):
        if is_intact(folder):
            return folder
    return None


def checkpoint_step(folder: Path) -> int:
    return int(json.loads((folder / MANIFEST).read_text())["step"])


def load_checkpoint(folder: Path) -> dict[str, Any]:
    """The top-level ``NAME.pt`` files of a checkpoint as {NAME: value} (engine shards stay on disk)."""
    files = json.loads((folder / MANIFEST).read_text())["files"]
    return {Path(n).stem: torch.load(folder / n, weights_only=True)
            for n in files if "/" not in n and n.endswith(".pt")}


def cpu_copy(value: Any) -> Any:
    """A deep copy of nested dicts/lists/tuples with every tensor cloned to CPU memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: cpu_copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(cpu_copy(v) for v in value)
    return value


class AsyncCheckpointer:
    """Writes checkpoints on one background thread; at most one write is in flight.

    ``save`` snapshots the state to CPU (the only part that blocks training), waits for the
    previous write to finish, and hands the snapshot to a new writer thread. ``wait`` joins the
    writer and re-raises its error, so a failed write is never silent.
    """

    def __init__(self) -> None:
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def save(self, root: Path, step: int, state: dict[str, Any], keep_last: int = 2) -> None:
        snapshot = cpu_copy(state)
        self.wait()

        def write() -> None:
            try:
                save_checkpoint(root, step, snapshot, keep_last)
            except BaseException as err:  # surfaced by wait()
                self._error = err

        self._thread = threading.Thread(target=write, name=f"checkpoint-{step}", daemon=True)
        self._thread.start()

    def wait(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError("asynchronous checkpoint write failed") from err
