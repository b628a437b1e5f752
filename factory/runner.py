"""Materializing one asset: config -> artifact key -> (reuse | Ray Job) -> manifest + MLflow run.

This is the single execution path used by Dagster assets, the CLI and the tests:

1. validate the asset's profile section into its typed config;
2. take the latest artifact of each upstream asset (they must exist);
3. key the artifact by (config, the stage's code version, input digests, external files such as WARC paths);
4. if the keyed artifact exists, reuse it without a new MLflow run (the outcome names the run that
   built it); else, holding the key's lock, open an MLflow run, log config and inputs and submit
   the stage as a Ray Job (``factory.raycluster``) through the runner's ``JobLauncher``. The job
   (``factory.jobs.run_stage_job``) does the artifact work where it runs: inputs as
   ``store.local_path`` gives them (the artifact folders of a local store, verified downloads for
   an object store), a local staging folder as ``out`` that it commits on success (rename, or
   upload with the manifest last), a local resumable ``work_dir``; it returns the manifest;
5. check the manifest is committed, log the result's metrics, register checkpoints, point the
   asset's ref at the new manifest.

With an object-store root the job can run on any node; with a local root the node must see the
same folders (the embedded Ray and the single-machine cluster do by construction).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.config import Profile
from factory.lineage import Tracker
from factory.raycluster import JobFailedError, JobLauncher, job_for, launcher_for, new_submission_id
from factory.stages import StageSpec, check_profile, stage_config, stage_specs
from factory.store import Manifest, canonical_json, is_remote, open_store, stage_key


@dataclass
class Outcome:
    asset: str
    manifest: Manifest
    reused: bool
    mlflow_run_id: str  # the run that built the artifact (a reuse opens none; "" when it was built without one)
    path: Path | str  # the artifact folder of a local store, the artifact's URI on an object store
    seconds: float


class MissingUpstreamError(RuntimeError):
    """An input asset of the requested one has never been materialized."""


def spec_by_asset(profile: Profile) -> dict[str, StageSpec]:
    return {s.asset: s for s in stage_specs(profile)}


def external_fingerprint(config: Any) -> str:
    """Digest of files outside the store a stage reads (its config's ``external_files()``, globs already
    expanded there); "" for a stage that reads none."""
    files_fn = getattr(config, "external_files", None)
    return "" if files_fn is None else files_fingerprint(files_fn())


def files_fingerprint(paths: list[str]) -> str:
    """Digest of a listing of files: local files by name, size and mtime; remote ones (``s3://...``) by
    name and what fsspec's listing of their folder reports: the ETag when there is one, else size and
    modification time. One listing per folder, not a request per object: the ``warc_files``
    observation fingerprints a whole crawl every 15 minutes."""
    remote = _remote_signatures([p for p in paths if is_remote(p)])
    h = hashlib.sha256()
    for path in sorted(paths):
        if is_remote(path):
            h.update(f"{path}\0{remote[path]}\n".encode())
        else:
            st = os.stat(path)
            h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _remote_signatures(urls: list[str]) -> dict[str, str]:
    """{url: signature} from a fresh listing of each folder (a long-lived process, the sensor or
    Dagster, must see the objects as they are now); an object the listing lacks is asked for alone."""
    from fsspec.core import url_to_fs

    folders: dict[tuple[int, str], list[tuple[str, str]]] = defaultdict(list)
    systems = {}
    for url in urls:
        fs, path = url_to_fs(url)
        systems[id(fs)] = fs
        folders[(id(fs), fs._parent(path))].append((url, path))
    signatures = {}
    for (fs_id, folder), members in folders.items():
        fs = systems[fs_id]
        listing = {fs._strip_protocol(e["name"]): e for e in fs.ls(folder, detail=True, refresh=True)}
        for url, path in members:
            signatures[url] = _signature(listing.get(path) or fs.info(path))
    return signatures


def _signature(info: dict[str, Any]) -> str:
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return f"etag={str(etag).strip(chr(34))}"
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified") or ""
    return f"size={info.get('size')}\0mtime={mtime}"


class Runner:
    """Materializes assets of one profile against its artifact store, Ray and MLflow."""

    def __init__(self, profile: Profile, log: Callable[[str], None] = print, launcher: JobLauncher | None = None):
        check_profile(profile)  # every section's errors now, not when its stage comes to run
        self.profile = profile
        self.launcher: JobLauncher = launcher or launcher_for(profile)
        self.store = open_store(profile)
        self.specs = spec_by_asset(profile)
        self.log = log
        self._tracker: Tracker | None = None
        self.job_env: dict[str, str] = {}  # extra environment of the stage jobs (tests: PYTHONPATH)

    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self.profile.home.mkdir(parents=True, exist_ok=True)
            self._tracker = Tracker(self.profile.mlflow_tracking_uri, f"factory/{self.profile.name}")
        return self._tracker

    def key_config(self, spec: StageSpec) -> dict[str, Any]:
        """What the artifact key hashes besides code and inputs: typed config, fixed args, external files."""
        config = stage_config(spec, self.profile)
        return {
            "config": config.model_dump(mode="json"),
            "extra": dict(spec.extra),
            "external": external_fingerprint(config),
        }

    def upstream(self, spec: StageSpec) -> dict[str, Manifest]:
        inputs = {}
        for name in spec.inputs:
            try:
                inputs[name] = self.store.latest(name)
            except FileNotFoundError as err:
                raise MissingUpstreamError(f"{spec.asset} needs {name!r}, which has not been materialized yet") from err
        return inputs

    def is_stale(self, spec: StageSpec, stale_upstream: bool) -> bool:
        """Whether materializing ``spec`` now would build (not reuse): its key differs from its current
        artifact's, it has none, or an input will be rebuilt first (``stale_upstream``)."""
        if stale_upstream:
            return True
        try:
            current = self.store.latest(spec.asset)
            inputs = self.upstream(spec)
        except (FileNotFoundError, MissingUpstreamError):
            return True
        return current.key != stage_key(spec.asset, self.key_config(spec), inputs, code_version=spec.code_version)

    def materialize(self, asset: str, dagster_run_id: str = "") -> Outcome:
        """Reuse the keyed artifact or build it. A reuse opens no MLflow run: the outcome names the
        run that built the artifact (its manifest's ``mlflow_run_id``). The reuse-or-build decision
        and the build hold the key's ``materialize`` lock, so a concurrent materialization of the
        same key waits and then reuses (one build, one MLflow run)."""
        if asset not in self.specs:
            raise KeyError(f"unknown asset {asset!r}; known: {', '.join(self.specs)}")
        spec = self.specs[asset]
        key_config = self.key_config(spec)
        inputs = self.upstream(spec)
        t0 = time.perf_counter()
        key = stage_key(asset, key_config, inputs, code_version=spec.code_version)
        built = None
        existing = self.store.intact(asset, key)
        if existing is None:
            with self.store.lock(asset, key, "materialize", log=self.log):
                existing = self.store.intact(asset, key)  # built by the materialization we waited for
                if existing is None:
                    built = self._build(spec, key, key_config, inputs, dagster_run_id)
        manifest, reused, run_id = built or (existing, True, self.tracker.reuse(asset, existing))
        self.store.set_ref(asset, manifest)
        seconds = time.perf_counter() - t0
        self.log(f"{asset}: {'reused' if reused else 'built'} {manifest.key} in {seconds:.1f}s")
        return Outcome(asset, manifest, reused, run_id, self.store.location(manifest), seconds)

    def _build(self, spec: StageSpec, key: str, key_config: dict[str, Any], inputs: dict[str, Manifest],
               dagster_run_id: str) -> tuple[Manifest, bool, str]:
        """Run the stage's job inside a new MLflow run; returns (manifest, reused, run id). ``reused``
        only when the job found the artifact committed by a builder this runner did not wait for
        (one whose driver died while its job went on)."""
        tags = {"dagster.run_id": dagster_run_id, "factory.profile": self.profile.name, "factory.group": spec.group}
        with self.tracker.run(spec.asset, tags) as run_id:
            self.tracker.log_config(key_config)
            self.tracker.log_inputs(inputs, self.store)
            manifest, reused = self._run_job(spec, key, key_config, inputs, run_id)
            self.tracker.log_result(manifest, self.store, reused)
            self.tracker.register_checkpoint(spec.asset, manifest, self.store, run_id)
        return manifest, reused, run_id

    def request(self, spec: StageSpec, key: str, key_config: dict[str, Any], inputs: dict[str, Manifest],
                mlflow_run_id: str) -> dict[str, Any]:
        """What the stage's job needs to run on any node (``factory.jobs.run_stage_job``)."""
        remote_job = bool(self.profile.ray_address)
        return {
            "asset": spec.asset,
            "target": spec.target,
            "config_class": spec.config_class,
            "config": key_config["config"],
            "extra": key_config["extra"],
            "key_config": key_config,
            "key": key,
            "code_version": spec.code_version,
            # A job on a cluster node keeps its cache/staging/work folders on that node.
            "store": {"root": str(self.store.root), "local_dir": None if remote_job else str(self.profile.home)},
            "inputs": {name: json.loads(m.to_json()) for name, m in inputs.items()},
            "torch_threads": self.profile.runtime.torch_threads,
            "num_cpus": self.profile.runtime.num_cpus,
            "accelerator": self.profile.runtime.accelerator,
            # Where the job's driver and workers run (runtime.resources): not in the key.
            "resources": self.profile.runtime.stage_resources(spec.config_section).model_dump(mode="json"),
            "mlflow": {"tracking_uri": self.profile.mlflow_tracking_uri, "run_id": mlflow_run_id},
        }

    def _run_job(self, spec: StageSpec, key: str, key_config: dict[str, Any], inputs: dict[str, Manifest],
                 run_id: str) -> tuple[Manifest, bool]:
        request = self.request(spec, key, key_config, inputs, run_id)
        job = job_for(self.profile, spec.ray_job, request, submission_id=new_submission_id(spec.asset),
                      env=self.job_env)
        self.log(f"{spec.asset}: running as Ray job '{spec.ray_job}' ({job.submission_id})")
        try:
            result = self.launcher.launch(job, self.log)
        finally:
            job.discard_request_file()
        manifest = self.store.find(spec.asset, key)
        if manifest is None or manifest.digest != result.get("manifest", {}).get("digest"):
            raise JobFailedError(f"Ray job {job.submission_id} ended without committing {spec.asset}/{key}")
        return manifest, bool(result.get("reused"))

    def materialize_all(self, assets: list[str] | None = None) -> list[Outcome]:
        wanted = set(assets or self.specs)
        return [self.materialize(a) for a in self.specs if a in wanted]


def config_digest(key_config: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(key_config).encode()).hexdigest()[:12]
