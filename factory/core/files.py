"""File primitives of the artifact contract (docs/architecture.md, "Artifacts"): content digests,
canonical JSON, atomic writes and the manifest's file name.

They sit in the foundation layer because the artifact store, the trainer's checkpoints and the
release bundle all hash and write files the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"  # the commit marker and file list of a finished artifact


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def canonical_json(obj: Any) -> str:
    """One JSON text per value (sorted keys, no spaces): the form every digest is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    tmp.write_text(text)
    os.replace(tmp, path)
