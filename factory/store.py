"""Content-addressed artifact store on a local folder or an object store (docs/architecture.md, "Artifacts").

An artifact is a folder (or object prefix) ``<root>/<stage>/<key>/`` holding the stage's files and
a ``manifest.json`` that lists every file with its sha256, the stage config, the code version and
the digests of its inputs. ``key`` is a hash of (stage, config, code version, input digests), as
in marin's executor (the code version is the stage's own, ``factory.core.code_version``, which the
caller passes): materializing again with nothing changed finds the artifact and reuses it, so
a scheduled rebuild only recomputes what really changed. The manifest's own ``digest`` (over
config, inputs and file hashes) is the asset's data version.

The root is any fsspec URL: a local folder (``/data/artifacts``, ``file://...``) or an object store
prefix (``s3://bucket/prefix``). Object-store settings come from the standard environment
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL_S3``, ``AWS_DEFAULT_REGION``),
so Ray workers started from the same environment reach the same store; ``storage_options`` may
override them.

Commit protocol (one code path for every root):
1. a stage writes into a local *staging* folder (``produce(out, work)``), never into the store;
2. every staged file is hashed and the manifest built;
3. ``_commit`` publishes it: on a local root the staging folder is a sibling of the final folder
   and holds the manifest, so one ``rename`` publishes everything at once; on an object store each
   file is uploaded under the final prefix and **the manifest is written last**, as the commit
   marker (a single-object PUT is atomic);
4. the asset's ref ``refs/<asset>.json`` is moved only afterwards (``set_ref``).
Readers trust only committed manifests: a prefix without ``manifest.json`` (a build killed during
its upload) is invisible (``find`` returns None) and the next build of that key overwrites it.

Stages read and write local folders. ``local_path(manifest)`` materializes an artifact locally: a
local root's artifact folder itself, or, for a remote root, a download into
``<local_dir>/cache/<stage>/<key>/`` in which every file is checked against its manifest sha256
(``ArtifactIntegrityError`` otherwise) and the manifest is written last, so a complete cached copy
is reused. A stage may keep resumable state (training checkpoints) in a ``work`` folder tied to the
same key; it is always a *local* folder (beside the artifacts for a local root, under
``<local_dir>/work`` for a remote one), so an interrupted materialization on this machine picks up
where it stopped.

Concurrency: ``build`` produces a key only while holding its lock (``lock``; ``factory.locks``: a
``flock`` on a local root, a lease object on an object store), so of two builders of one key the
second waits and then reuses the first one's artifact, and only the holder touches the key's work
and staging folders: it keeps the work folder (an interrupted build resumes) and removes the
staging folders that killed builds of the key left behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from factory.config import Profile
from factory.core.files import MANIFEST, atomic_write_text, canonical_json, sha256_file, sha256_text
from factory.locks import FileLock, LeaseLock

_CHUNK = 1 << 20


def is_remote(path: str | Path) -> bool:
    """True for a URL of a non-local filesystem (``s3://...``); plain paths and ``file://`` are local."""
    text = str(path)
    return "://" in text and not text.startswith(("file://", "local://"))


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


def stage_key(stage: str, config: dict[str, Any], inputs: dict[str, Manifest], *, code_version: str) -> str:
    """The artifact key: a hash of the stage, its config, the version of its code (the stage's own,
    ``StageSpec.code_version``) and its inputs' digests."""
    payload = {
        "stage": stage,
        "config": config,
        "code_version": code_version,
        "inputs": {name: m.digest for name, m in sorted(inputs.items())},
    }
    return sha256_text(canonical_json(payload))[:20]


class ArtifactStore:
    """Artifacts under one fsspec root plus ``refs/<asset>.json`` naming each asset's latest artifact.

    ``root``: a local folder or a URL such as ``s3://bucket/prefix``. ``local_dir``: where a remote
    root keeps its local side (``cache/`` downloads, ``staging/`` outputs, resumable ``work/``
    folders); default ``$TMPDIR/factory-store``; the runner passes the profile's home. A local root
    ignores it: staging and work folders sit beside its artifacts and nothing is cached.
    """

    def __init__(self, root: str | Path, local_dir: str | Path | None = None,
                 storage_options: dict[str, Any] | None = None):
        from fsspec.core import url_to_fs
        from fsspec.implementations.local import LocalFileSystem

        text = str(root)
        if not is_remote(text):
            text = str(Path(text.removeprefix("file://")).expanduser().resolve())
        self.fs, self._root = url_to_fs(text, **(storage_options or {}))
        self.local = isinstance(self.fs, LocalFileSystem)
        self._root = self._root.rstrip("/")
        if self.local:
            self.root = Path(self._root)
            self.root.mkdir(parents=True, exist_ok=True)
            self.local_dir = self.root
        else:
            self.root = self.fs.unstrip_protocol(self._root)
            base = Path(local_dir) if local_dir else Path(tempfile.gettempdir()) / "factory-store"
            self.local_dir = base.expanduser().resolve()

    # -- locations -------------------------------------------------------------------------
    def _join(self, *parts: str) -> str:
        return "/".join([self._root, *parts])

    def artifact_dir(self, stage: str, key: str) -> Path:
        """The artifact's folder; only a local root has one (see ``uri_of`` and ``local_path``)."""
        if not self.local:
            raise ValueError(f"{self.root} is not a local folder: use uri_of() or local_path()")
        return self.root / stage / key

    def uri_of(self, manifest: Manifest) -> str:
        """Where the artifact lives, as a URI: ``file:///...`` or ``s3://bucket/prefix/stage/key``."""
        if self.local:
            return self.artifact_dir(manifest.stage, manifest.key).as_uri()
        return self.fs.unstrip_protocol(self._join(manifest.stage, manifest.key))

    def location(self, manifest: Manifest) -> Path | str:
        """The artifact's folder for a local root, its URI otherwise (no download)."""
        return self.path_of(manifest) if self.local else self.uri_of(manifest)

    def path_of(self, manifest: Manifest) -> Path:
        """The artifact folder of a local root (no copy). Remote roots: use ``local_path``."""
        return self.artifact_dir(manifest.stage, manifest.key)

    def work_dir(self, stage: str, key: str) -> Path:
        """Resumable scratch space of one (stage, key), always a local folder: survives an
        interrupted build on this machine, not a finished one."""
        if self.local:
            path = self.root / stage / f".work-{key}"
        else:
            path = self.local_dir / "work" / stage / key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _staging_dir(self, stage: str, key: str) -> Path:
        """A fresh local folder for a stage's output; on a local root a sibling of the final folder
        (same filesystem, so the commit is one rename)."""
        parent = self.root / stage if self.local else self.local_dir / "staging" / stage
        path = parent / f".tmp-{key}-{uuid.uuid4().hex[:8]}"
        path.mkdir(parents=True)
        return path

    def _clear_staging(self, stage: str, key: str) -> list[Path]:
        """Remove the staging folders of ``key`` that earlier builds left (killed before their
        cleanup); only the holder of the key's lock may call it. Returns what it removed."""
        parent = self.root / stage if self.local else self.local_dir / "staging" / stage
        stale = sorted(parent.glob(f".tmp-{key}-*")) if parent.is_dir() else []
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        return stale

    def lock(self, stage: str, key: str, purpose: str = "build",
             log: Callable[[str], None] | None = None) -> FileLock | LeaseLock:
        """The lock of one (stage, key) for one ``purpose`` (a context manager; waits, logging once):
        ``build`` is taken by ``build``, ``materialize`` by the runner around its reuse-or-build
        decision. Lives at ``<root>/.locks/<stage>/<key>.<purpose>.lock``, a file on a local root, a
        lease object on an object store, so builders on other machines see it."""
        path = self._join(".locks", stage, f"{key}.{purpose}.lock")
        return FileLock(Path(path), log) if self.local else LeaseLock(self.fs, path, log)

    def _ref_path(self, asset: str) -> str:
        return self._join("refs", f"{asset}.json")

    # -- reading ---------------------------------------------------------------------------
    def _read_json(self, path: str) -> dict[str, Any] | None:
        try:
            return json.loads(self.fs.cat_file(path))
        except FileNotFoundError:
            return None

    def find(self, stage: str, key: str) -> Manifest | None:
        """The committed manifest of (stage, key), or None (never built, or a build that did not commit)."""
        data = self._read_json(self._join(stage, key, MANIFEST))
        return Manifest.from_dict(data) if data is not None else None

    def load(self, stage: str, key: str) -> Manifest:
        manifest = self.find(stage, key)
        if manifest is None:
            raise FileNotFoundError(f"no committed artifact {stage}/{key} in {self.root}")
        return manifest

    def latest(self, asset: str) -> Manifest:
        ref = self._read_json(self._ref_path(asset))
        if ref is None:
            raise FileNotFoundError(f"asset {asset!r} has never been materialized in {self.root}")
        return self.load(ref["stage"], ref["key"])

    def _hash_stored(self, path: str) -> str:
        h = hashlib.sha256()
        with self.fs.open(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                h.update(block)
        return h.hexdigest()

    def verify(self, manifest: Manifest) -> list[str]:
        """Re-hash every stored file of an artifact (streamed from the store); return the problems
        (empty when intact)."""
        problems = []
        for rel, expected in sorted(manifest.files.items()):
            try:
                actual = self._hash_stored(self._join(manifest.stage, manifest.key, rel))
            except FileNotFoundError:
                problems.append(f"{manifest.stage}/{manifest.key}/{rel}: missing")
                continue
            if actual != expected:
                problems.append(f"{manifest.stage}/{manifest.key}/{rel}: sha256 differs from manifest")
        if manifest.content_digest() != manifest.digest:
            problems.append(f"{manifest.stage}/{manifest.key}/{MANIFEST}: digest differs from its content")
        return problems

    def local_file(self, manifest: Manifest, rel: str) -> Path:
        """One file of an artifact as a local path: in place for a local root, else downloaded into
        the cache folder (sha256 checked against the manifest; a mismatch raises ``ArtifactIntegrityError``)."""
        if rel not in manifest.files:
            raise FileNotFoundError(f"{manifest.stage}/{manifest.key} has no file {rel!r}")
        if self.local:
            return self.path_of(manifest) / rel
        target = self._cache_dir(manifest) / rel
        if target.exists():  # only ever renamed into place after its digest matched
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
        h = hashlib.sha256()
        try:
            with self.fs.open(self._join(manifest.stage, manifest.key, rel), "rb") as src, open(partial, "wb") as dst:
                while block := src.read(_CHUNK):
                    h.update(block)
                    dst.write(block)
            if h.hexdigest() != manifest.files[rel]:
                raise ArtifactIntegrityError(f"{self.uri_of(manifest)}/{rel}: downloaded sha256 {h.hexdigest()[:12]} "
                                             f"!= manifest {manifest.files[rel][:12]}")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return target

    def _cache_dir(self, manifest: Manifest) -> Path:
        """``<local_dir>/cache/<stage>/<key>/``, emptied first when it holds another build of the key
        (a corrupt artifact rebuilt with other bytes); ``.<key>.digest`` beside it says which."""
        folder = self.local_dir / "cache" / manifest.stage / manifest.key
        marker = folder.with_name(f".{manifest.key}.digest")
        if not marker.exists() or marker.read_text() != manifest.digest:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True, exist_ok=True)
            atomic_write_text(marker, manifest.digest)
        return folder

    def local_path(self, manifest: Manifest) -> Path:
        """The artifact as a local folder a stage can read: the artifact folder itself for a local
        root (no copy); for a remote root ``<local_dir>/cache/<stage>/<key>/``, downloaded file by
        file with digest checks, the manifest written last, and reused once complete."""
        if self.local:
            return self.path_of(manifest)
        folder = self._cache_dir(manifest)
        cached = folder / MANIFEST
        if cached.exists() and json.loads(cached.read_text()).get("digest") == manifest.digest:
            return folder
        for rel in sorted(manifest.files):
            self.local_file(manifest, rel)
        atomic_write_text(cached, manifest.to_json())
        return folder

    # -- writing ---------------------------------------------------------------------------
    def set_ref(self, asset: str, manifest: Manifest) -> None:
        """Point ``refs/<asset>.json`` at a committed artifact (after its manifest was written)."""
        if self.local:
            atomic_write_text(Path(self._ref_path(asset)), canonical_json(manifest.ref()))
        else:
            self.fs.pipe_file(self._ref_path(asset), canonical_json(manifest.ref()).encode())

    def _commit(self, staged: Path, manifest: Manifest) -> None:
        """Publish a staged artifact under its final location, the manifest last (see the module doc)."""
        final = self._join(manifest.stage, manifest.key)
        text = manifest.to_json()
        if self.local:
            (staged / MANIFEST).write_text(text)
            if os.path.exists(final):  # an uncommitted, corrupt or half-deleted earlier copy: replace it
                shutil.rmtree(final)
            os.rename(staged, final)
            return
        # Un-commit first, so a reader never sees a manifest next to half-replaced files.
        self.fs.invalidate_cache(final)
        if self.fs.exists(final):
            try:
                self.fs.rm_file(self._join(manifest.stage, manifest.key, MANIFEST))
            except FileNotFoundError:
                pass
            self.fs.rm(final, recursive=True)
        for rel in sorted(manifest.files):
            self.fs.put_file(str(staged / rel), self._join(manifest.stage, manifest.key, rel))
        self._write_manifest(manifest.stage, manifest.key, text)
        self.fs.invalidate_cache(final)

    def _write_manifest(self, stage: str, key: str, text: str) -> None:
        """The commit marker: one object PUT; until it exists the prefix is invisible to readers."""
        self.fs.pipe_file(self._join(stage, key, MANIFEST), text.encode())

    def build(
        self,
        stage: str,
        config: dict[str, Any],
        inputs: dict[str, Manifest],
        produce: Callable[[Path, Path], dict[str, Any]],
        *,
        code_version: str,
        log: Callable[[str], None] | None = None,
    ) -> tuple[Manifest, bool]:
        """Return the artifact of (stage, config, code version, inputs), producing it only if it does not exist.

        ``produce(out_dir, work_dir) -> metadata`` writes the artifact's files into ``out_dir``, a
        local staging folder; ``work_dir`` is the local resumable scratch folder of the key.
        Produces only while holding the key's lock (module doc): a concurrent builder of the key
        waits (``log`` says for whom) and then reuses. Returns ``(manifest, reused)``.
        """
        key = stage_key(stage, config, inputs, code_version=code_version)
        existing = self.intact(stage, key)
        if existing is not None:
            return existing, True
        with self.lock(stage, key, log=log) as held:
            existing = self.intact(stage, key)  # built by the holder we waited for
            if existing is not None:
                return existing, True
            self._clear_staging(stage, key)
            staged = self._staging_dir(stage, key)
            work = self.work_dir(stage, key)
            try:
                metadata = produce(staged, work)
                files = {
                    p.relative_to(staged).as_posix(): sha256_file(p)
                    for p in sorted(staged.rglob("*"))
                    if p.is_file() and p.name != MANIFEST
                }
                manifest = Manifest(
                    stage=stage,
                    key=key,
                    config=config,
                    code_version=code_version,
                    inputs={name: m.ref() for name, m in sorted(inputs.items())},
                    files=files,
                    metadata=json.loads(canonical_json(metadata or {})),
                    created_at=time.time(),
                )
                manifest.digest = manifest.content_digest()
                held.check()
                self._commit(staged, manifest)
            finally:
                if staged.exists():
                    shutil.rmtree(staged, ignore_errors=True)
            shutil.rmtree(work, ignore_errors=True)
        return manifest, False

    def intact(self, stage: str, key: str) -> Manifest | None:
        """The committed artifact of (stage, key) when every file matches its manifest, else None."""
        existing = self.find(stage, key)
        return existing if existing is not None and not self.verify(existing) else None


def open_store(profile: Profile) -> ArtifactStore:
    """The profile's artifact store as a client (runner, checks, CLI) opens it. An object-store root
    keeps the client's verified downloads (what it logs to MLflow, what checks read) in the
    machine's temp cache, as a job on a node does, never in the factory home: on a cluster the
    home holds no artifact data."""
    return ArtifactStore(profile.artifact_root, local_dir=None if is_remote(profile.artifact_root) else profile.home)
