"""Lineage: MLflow runs for materializations, and the audit walk from an asset back to the crawl.

Every build opens one MLflow run (experiment ``factory/<profile>``) tagged with the asset key, the
Dagster run id, the artifact key and its digest; a reuse of a committed artifact opens none and
names the run that built it (``Tracker.reuse``: the manifest's ``mlflow_run_id``), so a no-op
scheduled rebuild adds no runs. Each input is logged with
``mlflow.log_input`` as a dataset whose digest is the input manifest's digest, so the MLflow UI
shows what a model was built from; a dataset's source is the artifact's URI (``file:///...`` or
``s3://bucket/...``). A run ends ``FINISHED``, ``FAILED`` when its build raises, ``KILLED`` when
it is interrupted (KeyboardInterrupt, SIGTERM, Dagster's run termination). A run is tagged with
the host and pid of the process that opened it: a process killed outright (SIGKILL, OOM killer)
cannot end its run, so the next tracker on that host ends such orphans ``FAILED``.

Models live on the tracking server, not in local folders, so ``models:/factory-<asset>@current``
resolves from any process that has only the tracking URI (and, for a server that does not proxy
artifacts, the object store's credentials). A checkpoint artifact (``model.safetensors``) is logged
into its materialization's run under ``checkpoint/`` with an ``MLmodel`` file of flavor ``factory``
and registered from ``runs:/<run>/checkpoint`` as ``factory-<asset>``, alias ``current`` (MLflow
reserves ``latest``). A Hugging Face bundle (``hf/`` of ``quantized_release``) is also logged with
the ``mlflow.transformers`` flavor and registered as ``factory-chat``, so
``mlflow.transformers.load_model("models:/factory-chat@current")`` gives a text-generation pipeline.

Size: the files are copied into MLflow's artifact store (for the demo sizes, a few MB per
checkpoint). A large deployment should not copy multi-GB checkpoints twice: point MLflow's artifact
root and the artifact store at the same bucket and log only the ``MLmodel`` with the weights
referenced by their ``s3://`` URIs (or register a version whose source is the artifact's own
prefix, which a server accepts when it lies under its artifact root), so a registration costs a
few KB.

``audit`` walks manifests from an asset back to ``raw_crawl``, re-hashing every stored file (read
from the store itself, streamed for an object store, not from a local cache): a single flipped byte
anywhere in the chain makes it fail.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.store import ArtifactStore, Manifest

CHECKPOINT_FILE = "model.safetensors"
ALIAS = "current"
CHECKPOINT_PATH = "checkpoint"  # artifact path of a checkpoint inside its run
HF_BUNDLE = "hf"  # folder of an artifact holding a Hugging Face causal LM + tokenizer
CHAT_MODEL = "factory-chat"  # registered name of the transformers-flavor chat model
HOST_TAG, PID_TAG = "factory.host", "factory.pid"  # who opened a run (see Tracker.fail_orphaned_runs)
# Where `make mlflow` serves the UI over an embedded (sqlite) tracking store.
MLFLOW_UI_HOST, MLFLOW_UI_PORT = "127.0.0.1", 5000


def mlflow_ui(tracking_uri: str) -> str:
    """The MLflow UI's address for ``tracking_uri``: a tracking server serves its own UI; a local
    store is served by ``mlflow ui`` at ``MLFLOW_UI_HOST:MLFLOW_UI_PORT`` (``make mlflow``)."""
    if tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return f"http://{MLFLOW_UI_HOST}:{MLFLOW_UI_PORT}"


def run_page(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The page of one run in the MLflow UI."""
    return f"{mlflow_ui(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


class BuildInterrupted(KeyboardInterrupt):
    """Raised in the main thread by SIGTERM while a run is open, so the run ends KILLED, not RUNNING."""


def _end_status(exc: BaseException | None) -> str:
    """MLflow status of a run whose body ended with ``exc``: an ordinary error is a failure; what only
    stops the process (KeyboardInterrupt, SIGTERM, SystemExit, Dagster's interruption, which derives
    from BaseException) is a cancellation."""
    if exc is None:
        return "FINISHED"
    return "FAILED" if isinstance(exc, Exception) else "KILLED"


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While open, SIGTERM raises ``BuildInterrupted`` in the main thread (when nobody else handles it)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL, None
    ):
        yield
        return

    def handler(signum, frame):
        raise BuildInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a local SQLite store
    (``<db folder>/mlartifacts/<experiment>``, instead of MLflow's ``./mlruns`` under the current
    directory); None (the server's choice) for a tracking server."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///"):])
    return (db.parent.resolve() / "mlartifacts" / experiment.replace("/", "_")).as_uri()


def plot_files(manifest: Manifest) -> list[str]:
    """The plots a stage drew: the PNG files at the top of its artifact."""
    return sorted(rel for rel in manifest.files if "/" not in rel and rel.endswith(".png"))


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value
    return out


def numeric_leaves(metadata: dict[str, Any]) -> dict[str, float]:
    """Numbers of a nested metadata dict as flat MLflow metric names (bools and strings dropped)."""
    flat = _flatten("", metadata, {})
    return {
        k.replace(" ", "_")[:250]: float(v)
        for k, v in flat.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
    }


class Tracker:
    """Thin wrapper over MLflow for one profile's experiment."""

    def __init__(self, tracking_uri: str, experiment: str):
        import mlflow

        os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        mlflow.set_tracking_uri(tracking_uri)
        self._mlflow = mlflow
        found = mlflow.get_experiment_by_name(experiment)
        self.experiment_id = found.experiment_id if found else mlflow.create_experiment(
            experiment, artifact_location=default_artifact_location(tracking_uri, experiment))
        self.fail_orphaned_runs()

    def fail_orphaned_runs(self) -> list[str]:
        """End ``FAILED`` the RUNNING runs of this experiment opened on this host by a process that no
        longer exists (killed before it could end them); returns their ids."""
        client = self._mlflow.MlflowClient()
        host = socket.gethostname()
        orphans = []
        for run in client.search_runs([self.experiment_id], "attributes.status = 'RUNNING'", max_results=1000):
            tags = run.data.tags
            if tags.get(HOST_TAG) != host or not tags.get(PID_TAG, "").isdigit() or _alive(int(tags[PID_TAG])):
                continue
            error = f"process {tags[PID_TAG]} on {host} died with the run open"
            client.set_tag(run.info.run_id, "factory.error", error)
            client.set_terminated(run.info.run_id, "FAILED")
            orphans.append(run.info.run_id)
        return orphans

    @contextlib.contextmanager
    def run(self, asset: str, tags: dict[str, str]) -> Iterator[str]:
        """Open one run for a materialization of ``asset``; yields its run id.

        The run ends FINISHED when the body returns, FAILED when it raises an error and KILLED when
        it is interrupted (see ``_end_status``; SIGTERM is turned into an interruption while the
        run is open). A SIGKILL of this process leaves it RUNNING until ``fail_orphaned_runs``.
        """
        run = self._mlflow.start_run(experiment_id=self.experiment_id, run_name=asset, tags={
            "factory.asset": asset, HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid()), **tags})
        run_id = run.info.run_id
        try:
            with _sigterm_raises():
                yield run_id
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self._mlflow.set_tag("factory.error", f"{type(exc).__name__}: {exc}"[:5000])
            self._end(run_id, _end_status(exc))
            raise
        self._end(run_id, _end_status(None))

    def _end(self, run_id: str, status: str) -> None:
        active = self._mlflow.active_run()
        if active is not None and active.info.run_id == run_id:
            self._mlflow.end_run(status)
        else:  # someone ended or replaced the active run: end ours by id
            self._mlflow.MlflowClient().set_terminated(run_id, status)

    def log_inputs(self, inputs: dict[str, Manifest], store: ArtifactStore) -> None:
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        for name, manifest in sorted(inputs.items()):
            source = resolve_dataset_source(store.uri_of(manifest))
            dataset = MetaDataset(source=source, name=name, digest=manifest.digest[:36])
            self._mlflow.log_input(dataset, context="input",
                                   tags={"stage_key": manifest.key, "digest": manifest.digest})

    def log_config(self, config: dict[str, Any]) -> None:
        params = {k[:250]: str(v)[:500] for k, v in _flatten("", config, {}).items()}
        for chunk in _chunks(sorted(params.items()), 100):
            self._mlflow.log_params(dict(chunk))

    def log_result(self, manifest: Manifest, store: ArtifactStore, reused: bool) -> None:
        mlflow = self._mlflow
        mlflow.set_tags({"factory.digest": manifest.digest, "factory.stage_key": manifest.key,
                         "factory.reused": str(reused)})
        metrics = numeric_leaves(manifest.metadata)
        for chunk in _chunks(sorted(metrics.items()), 200):
            mlflow.log_metrics(dict(chunk))
        mlflow.log_text(manifest.to_json(), "manifest.json")
        for png in plot_files(manifest):
            mlflow.log_artifact(str(store.local_file(manifest, png)), artifact_path="plots")
        for report in ("report.md", "report.json", "README.md"):
            if report in manifest.files:
                mlflow.log_artifact(str(store.local_file(manifest, report)))

    def reuse(self, asset: str, manifest: Manifest) -> str:
        """A reuse of a committed artifact, which opens no run: point the registered models' alias
        back at the versions registered from this artifact (when it holds a checkpoint and they
        exist) and return the id of the run that built it (``""`` when it was built without one)."""
        if CHECKPOINT_FILE in manifest.files or f"{HF_BUNDLE}/{CHECKPOINT_FILE}" in manifest.files:
            self._registered(f"factory-{asset}", manifest.digest)
        if f"{HF_BUNDLE}/config.json" in manifest.files:
            self._registered(CHAT_MODEL, manifest.digest)
        return str(manifest.metadata.get("mlflow_run_id", ""))

    def register_checkpoint(self, asset: str, manifest: Manifest, store: ArtifactStore, run_id: str) -> str | None:
        """Log a checkpoint artifact into run ``run_id`` and register it as ``factory-<asset>``,
        alias ``current``; returns the version (None when the artifact holds no checkpoint).

        The artifact's files (with its manifest) go to ``checkpoint/`` with an ``MLmodel`` of flavor
        ``factory`` (loader ``factory.model.checkpoint_io.load_model``; a ``quantized_release`` is a
        folder of several formats, see its manifest), and the version is created from
        ``runs:/<run>/checkpoint``, so its source is the run's artifact location on the tracking
        server (``mlflow-artifacts:/...`` or ``s3://...``; ``file://...`` for a local store).
        An artifact carrying a Hugging Face bundle is also registered as ``factory-chat``
        (``log_hf_bundle``). Idempotent: an artifact already registered (same digest) is not logged
        again; only the alias moves to its version.
        """
        if CHECKPOINT_FILE not in manifest.files and f"{HF_BUNDLE}/{CHECKPOINT_FILE}" not in manifest.files:
            return None
        name = f"factory-{asset}"
        version = self._registered(name, manifest.digest)
        if version is None:
            from mlflow.models import Model

            folder = store.local_path(manifest)
            self._mlflow.log_artifacts(str(folder), artifact_path=CHECKPOINT_PATH)
            model = Model(artifact_path=CHECKPOINT_PATH, run_id=run_id)
            model.add_flavor("factory", loader="factory.model.checkpoint_io.load_model", asset=asset,
                             stage_key=manifest.key, digest=manifest.digest,
                             weights=CHECKPOINT_FILE if CHECKPOINT_FILE in manifest.files
                             else f"{HF_BUNDLE}/{CHECKPOINT_FILE}")
            self._mlflow.log_text(model.to_yaml(), f"{CHECKPOINT_PATH}/MLmodel")
            version = self._register(f"runs:/{run_id}/{CHECKPOINT_PATH}", name, asset, manifest,
                                     f"Checkpoints of the factory asset {asset}.")
        if f"{HF_BUNDLE}/config.json" in manifest.files:
            self.log_hf_bundle(asset, manifest, store)
        return version

    def log_hf_bundle(self, asset: str, manifest: Manifest, store: ArtifactStore) -> str:
        """Log the artifact's ``hf/`` bundle with the ``mlflow.transformers`` flavor (task
        text-generation, weights and tokenizer saved into the logged model) in the active run and
        register it as ``factory-chat``, alias ``current``; returns the version. Loads the bundle
        from the local folder only (no hub access); idempotent like ``register_checkpoint``."""
        version = self._registered(CHAT_MODEL, manifest.digest)
        if version is not None:
            return version
        import mlflow.transformers
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = store.local_path(manifest) / HF_BUNDLE
        components = {
            "model": AutoModelForCausalLM.from_pretrained(folder, local_files_only=True),
            "tokenizer": AutoTokenizer.from_pretrained(folder, local_files_only=True),
        }
        info = mlflow.transformers.log_model(
            components, name="chat", task="text-generation",
            # Stated, not inferred: inference would load the model again in a subprocess.
            pip_requirements=[f"transformers=={transformers.__version__}", f"torch=={torch.__version__}"],
            tags={"factory.asset": asset, "factory.digest": manifest.digest},
        )
        return self._register(info.model_uri, CHAT_MODEL, asset, manifest,
                              "The factory's chat model (Hugging Face bundle of the release).")

    def _registered(self, name: str, digest: str) -> str | None:
        """The version of ``name`` registered from the artifact with ``digest`` (alias moved to it), if any."""
        client = self._mlflow.MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            return None
        for v in client.search_model_versions(f"name = '{name}'"):
            if v.tags.get("digest") == digest:
                client.set_registered_model_alias(name, ALIAS, v.version)
                return v.version
        return None

    def _register(self, model_uri: str, name: str, asset: str, manifest: Manifest, description: str) -> str:
        client = self._mlflow.MlflowClient()
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description=description)
        version = self._mlflow.register_model(
            model_uri, name, await_registration_for=0,
            tags={"digest": manifest.digest, "stage_key": manifest.key, "factory.asset": asset})
        client.set_registered_model_alias(name, ALIAS, version.version)
        return version.version


def _chunks(items: list, size: int) -> Iterator[list]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@dataclass
class LineageNode:
    asset: str
    manifest: Manifest
    depth: int
    problems: list[str]
    repeated: bool = False  # already verified (and expanded) earlier in the walk


def audit(store: ArtifactStore, asset: str) -> list[LineageNode]:
    """Walk from the latest artifact of ``asset`` back through every input, verifying each one.

    Returns the chain depth-first; a node's ``problems`` is empty when its files match its manifest.
    Each artifact is verified once even when several paths reach it.
    """
    nodes: list[LineageNode] = []
    seen: set[tuple[str, str]] = set()

    def visit(name: str, manifest: Manifest, depth: int) -> None:
        if (manifest.stage, manifest.key) in seen:
            nodes.append(LineageNode(name, manifest, depth, [], repeated=True))
            return
        nodes.append(LineageNode(name, manifest, depth, store.verify(manifest)))
        seen.add((manifest.stage, manifest.key))
        for input_name, ref in sorted(manifest.inputs.items()):
            parent = store.load(ref["stage"], ref["key"])
            if parent.digest != ref["digest"]:
                nodes[-1].problems.append(f"input {input_name}: recorded digest {ref['digest'][:12]} "
                                          f"!= stored {parent.digest[:12]}")
            visit(input_name, parent, depth + 1)

    visit(asset, store.latest(asset), 0)
    return nodes


def format_audit(nodes: list[LineageNode]) -> str:
    lines = []
    for node in nodes:
        m = node.manifest
        indent = "  " * node.depth
        if node.repeated:
            lines.append(f"{indent}{node.asset}  digest={m.digest[:16]}  (verified above)")
            continue
        status = "ok" if not node.problems else "FAILED"
        run = m.metadata.get("mlflow_run_id", "-")
        lines.append(f"{indent}{node.asset}  digest={m.digest[:16]}  key={m.key}  mlflow_run={run}  [{status}]")
        lines += [f"{indent}  ! {p}" for p in node.problems]
    return "\n".join(lines)


def artifact_path(store: ArtifactStore, asset: str) -> Path | str:
    """Where the latest artifact of ``asset`` lives: its folder (local store) or its URI (object store)."""
    return store.location(store.latest(asset))
