"""Content-addressed artifact store (docs/architecture.md, "Artifacts").

An artifact is a folder ``<root>/<stage>/<key>/`` holding the stage's files and a
``manifest.json`` that lists every file with its sha256, the stage config, the code version and
the digests of its inputs. ``key`` is a hash of (stage, config, code version, input digests), as
in marin's executor: materializing again with nothing changed finds the folder and reuses it, so a
scheduled rebuild only recomputes what really changed. The manifest's own ``digest`` (over config,
inputs and file hashes) is the asset's data version.

Writes are atomic: a stage writes into a temporary sibling folder that is renamed into place only
after every file is hashed. A stage may also keep resumable state (training checkpoints) in a
``work`` folder tied to the same key, so an interrupted materialization picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from factory.core.files import MANIFEST, atomic_write_text, canonical_json, sha256_file, sha256_text

_CODE_DIRS = ("factory", "kernels", "ray_jobs")


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus a hash of the library's source, so changed code means a new artifact."""
    from factory import __version__

    project = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for top in _CODE_DIRS:
        for path in sorted((project / top).rglob("*.py")):
            h.update(str(path.relative_to(project)).encode())
            h.update(path.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


@dataclass
class Manifest:
    """What an artifact is: its files with hashes, how it was made, and from which inputs."""

    stage: str
    key: str
    config: dict[str, Any]
    code_version: str
    inputs: dict[str, dict[str, str]]  # input name -> {"stage", "key", "digest"}
    files: dict[str, str]  # relative path -> sha256
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    digest: str = ""

    def content_digest(self) -> str:
        """Digest over everything that defines the artifact's content (not timings or metadata)."""
        return sha256_text(
            canonical_json(
                {
                    "stage": self.stage,
                    "key": self.key,
                    "config": self.config,
                    "code_version": self.code_version,
                    "inputs": self.inputs,
                    "files": self.files,
                }
            )
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(**data)

    def ref(self) -> dict[str, str]:
        return {"stage": self.stage, "key": self.key, "digest": self.digest}


class ArtifactIntegrityError(RuntimeError):
    """A stored artifact no longer matches its manifest."""


def stage_key(stage: str, config: dict[str, Any], inputs: dict[str, Manifest]) -> str:
    payload = {
        "stage": stage,
        "config": config,
        "code_version": code_version(),
        "inputs": {name: m.digest for name, m in sorted(inputs.items())},
    }
    return sha256_text(canonical_json(payload))[:20]


class ArtifactStore:
    """A local folder of artifacts plus ``refs/<asset>.json`` naming each asset's latest artifact."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    # -- locations -------------------------------------------------------------------------
    def artifact_dir(self, stage: str, key: str) -> Path:
        return self.root / stage / key

    def work_dir(self, stage: str, key: str) -> Path:
        """Resumable scratch space of one (stage, key): survives an interrupted build, not a finished one."""
        path = self.root / stage / f".work-{key}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _ref_path(self, asset: str) -> Path:
        return self.root / "refs" / f"{asset}.json"

    # -- reading ---------------------------------------------------------------------------
    def load(self, stage: str, key: str) -> Manifest:
        path = self.artifact_dir(stage, key) / MANIFEST
        return Manifest.from_dict(json.loads(path.read_text()))

    def find(self, stage: str, key: str) -> Manifest | None:
        path = self.artifact_dir(stage, key) / MANIFEST
        return Manifest.from_dict(json.loads(path.read_text())) if path.exists() else None

    def latest(self, asset: str) -> Manifest:
        path = self._ref_path(asset)
        if not path.exists():
            raise FileNotFoundError(f"asset {asset!r} has never been materialized in {self.root}")
        ref = json.loads(path.read_text())
        return self.load(ref["stage"], ref["key"])

    def path_of(self, manifest: Manifest) -> Path:
        return self.artifact_dir(manifest.stage, manifest.key)

    def verify(self, manifest: Manifest) -> list[str]:
        """Re-hash every file of an artifact; return a list of problems (empty when intact)."""
        problems = []
        folder = self.path_of(manifest)
        for rel, expected in sorted(manifest.files.items()):
            path = folder / rel
            if not path.exists():
                problems.append(f"{manifest.stage}/{manifest.key}/{rel}: missing")
            elif sha256_file(path) != expected:
                problems.append(f"{manifest.stage}/{manifest.key}/{rel}: sha256 differs from manifest")
        if manifest.content_digest() != manifest.digest:
            problems.append(f"{manifest.stage}/{manifest.key}/{MANIFEST}: digest differs from its content")
        return problems

    # -- writing ---------------------------------------------------------------------------
    def set_ref(self, asset: str, manifest: Manifest) -> None:
        atomic_write_text(self._ref_path(asset), canonical_json(manifest.ref()))

    def build(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: dict[str, Manifest],
        produce: Callable[[Path, Path], dict[str, Any]],
    ) -> tuple[Manifest, bool]:
        """Return the artifact of (stage, config, inputs), producing it only if it does not exist.

        ``produce(out_dir, work_dir) -> metadata`` writes the artifact's files into ``out_dir``.
        Returns ``(manifest, reused)``.
        """
        key = stage_key(stage, config, inputs)
        existing = self.find(stage, key)
        if existing is not None and not self.verify(existing):
            return existing, True
        final = self.artifact_dir(stage, key)
        tmp = final.parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir(parents=True)
        work = self.work_dir(stage, key)
        try:
            metadata = produce(tmp, work)
            files = {
                str(p.relative_to(tmp)): sha256_file(p)
                for p in sorted(tmp.rglob("*"))
                if p.is_file() and p.name != MANIFEST
            }
            manifest = Manifest(
                stage=stage,
                key=key,
                config=config,
                code_version=code_version(),
                inputs={name: m.ref() for name, m in sorted(inputs.items())},
                files=files,
                metadata=json.loads(canonical_json(metadata or {})),
                created_at=time.time(),
            )
            manifest.digest = manifest.content_digest()
            (tmp / MANIFEST).write_text(manifest.to_json())
            if final.exists():  # a corrupt or half-deleted earlier copy: replace it
                shutil.rmtree(final)
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
        return manifest, False
