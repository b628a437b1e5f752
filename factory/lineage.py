"""Lineage: MLflow runs for materializations, and the audit walk from an asset back to the crawl.

Every materialization opens one MLflow run (experiment ``factory/<profile>``) tagged with the
asset key, the Dagster run id, the artifact key and its digest. Each input is logged with
``mlflow.log_input`` as a dataset whose digest is the input manifest's digest, so the MLflow UI
shows what a model was built from; a dataset's source is the artifact's URI (``file:///...`` or
``s3://bucket/...``). Checkpoint artifacts become registered-model versions whose source is that
URI, with the alias ``current`` (MLflow reserves ``latest``).

``audit`` walks manifests from an asset back to ``raw_crawl``, re-hashing every stored file (read
from the store itself, streamed for an object store, not from a local cache): a single flipped byte
anywhere in the chain makes it fail.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from factory.store import ArtifactStore, Manifest

CHECKPOINT_FILE = "model.safetensors"
ALIAS = "current"


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
        self.experiment_id = found.experiment_id if found else mlflow.create_experiment(experiment)

    @contextlib.contextmanager
    def run(self, asset: str, tags: dict[str, str]) -> Iterator[str]:
        """Open one run for a materialization of ``asset``; yields its run id."""
        with self._mlflow.start_run(experiment_id=self.experiment_id, run_name=asset,
                                    tags={"factory.asset": asset, **tags}) as run:
            yield run.info.run_id

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
        for png in sorted(rel for rel in manifest.files if "/" not in rel and rel.endswith(".png")):
            mlflow.log_artifact(str(store.local_file(manifest, png)), artifact_path="plots")
        for report in ("report.md", "report.json", "README.md"):
            if report in manifest.files:
                mlflow.log_artifact(str(store.local_file(manifest, report)))

    def register_checkpoint(self, asset: str, manifest: Manifest, store: ArtifactStore, run_id: str) -> str | None:
        """Register a checkpoint artifact as a model version aliased ``current``; returns the version.

        Idempotent: an artifact already registered (same source URI) only gets the alias moved.
        """
        if CHECKPOINT_FILE not in manifest.files and f"hf/{CHECKPOINT_FILE}" not in manifest.files:
            return None
        source = store.uri_of(manifest)
        client = self._mlflow.MlflowClient()
        name = f"factory-{asset}"
        if not client.search_registered_models(filter_string=f"name = '{name}'"):
            client.create_registered_model(name, description=f"Checkpoints of the factory asset {asset}.")
        existing = [v for v in client.search_model_versions(f"name = '{name}'") if v.source == source]
        version = existing[0] if existing else client.create_model_version(
            name, source=source, run_id=run_id, tags={"digest": manifest.digest}, await_creation_for=0)
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
