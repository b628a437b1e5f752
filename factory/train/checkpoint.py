"""Training checkpoints that survive interruptions (recipe: "Infrastructure, Scaling, and Efficiency").

A checkpoint is a folder ``step-NNNNNNNN`` holding the model and optimizer state, the RNG state and
the data position (samples consumed), plus a ``manifest.json`` with the sha256 of each file. It is
written into a temporary folder and renamed into place, so a crash mid-write never leaves a
half-written checkpoint that looks complete; on resume, checkpoints whose files do not match their
manifest are skipped. Only the last ``keep_last`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from factory.store import sha256_file

PREFIX = "step-"
MANIFEST = "manifest.json"


def _step_dir(root: Path, step: int) -> Path:
    return root / f"{PREFIX}{step:08d}"


def save_checkpoint(root: Path, step: int, state: dict[str, Any], keep_last: int = 2) -> Path:
    """Atomically write ``state`` (tensors and plain values, saved with torch.save) as checkpoint ``step``."""
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{step:08d}-{uuid.uuid4().hex[:6]}"
    tmp.mkdir()
    files = {}
    for name, value in state.items():
        path = tmp / f"{name}.pt"
        torch.save(value, path)
        files[path.name] = sha256_file(path)
    (tmp / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=2))
    final = _step_dir(root, step)
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    for old in list_checkpoints(root)[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(root: Path) -> list[Path]:
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX))


def is_intact(folder: Path) -> bool:
    manifest = folder / MANIFEST
    if not manifest.exists():
        return False
    files = json.loads(manifest.read_text())["files"]
    return all((folder / n).exists() and sha256_file(folder / n) == h for n, h in files.items())


def latest_checkpoint(root: Path) -> Path | None:
    """Newest checkpoint whose files match its manifest (corrupt ones are skipped)."""
    for folder in reversed(list_checkpoints(root)):
        if is_intact(folder):
            return folder
    return None


def load_checkpoint(folder: Path) -> dict[str, Any]:
    files = json.loads((folder / MANIFEST).read_text())["files"]
    return {Path(n).stem: torch.load(folder / n, weights_only=False) for n in files}
