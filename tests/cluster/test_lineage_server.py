"""Lineage against the local cluster's `mlflow server` (artifacts proxied to S3): a materialization's
checkpoint is logged into its run, registered, and loaded back by ``models:/factory-<asset>@current``
from a fresh process that has only the cluster's client environment; failed runs end FAILED."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch

from factory import localcluster
from factory.core.stage import MetricsTarget
from factory.lineage import ALIAS, Tracker
from factory.model.checkpoint_io import save_model
from factory.model.llama import ModelArgs, Transformer
from factory.store import ArtifactStore

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(300)]
ROOT = Path(__file__).resolve().parents[2]

LOAD = """
from pathlib import Path
import mlflow, torch
from factory.model.checkpoint_io import load_model
uri = "models:/{name}@current"
assert mlflow.models.Model.load(uri).flavors["factory"]["digest"] == "{digest}"
lm = load_model(Path(mlflow.artifacts.download_artifacts(uri)))
print("LOADED", tuple(lm(torch.tensor([[1, 2, 3]])).shape))
"""


@pytest.fixture
def cluster_env(local_cluster, monkeypatch):
    state_dir = local_cluster["state_dir"]
    if not localcluster.status(state_dir)["up"]:  # another module's test may have brought it down
        localcluster.up(state_dir, base=local_cluster["port_base"], log=print)
    env = localcluster.client_env(state_dir)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env, state_dir


def test_checkpoint_registered_on_the_server_loads_from_a_fresh_process(cluster_env, tmp_path):
    import mlflow

    cluster_env, state_dir = cluster_env
    store = ArtifactStore(f"s3://{localcluster.BUCKET}/lineage-test-{uuid.uuid4().hex[:8]}", local_dir=tmp_path)

    def produce(out, work):
        torch.manual_seed(0)
        save_model(Transformer(ModelArgs(dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=64,
                                         ffn_hidden_dim=64, max_seq_len=64)), out)
        return {}

    manifest, _ = store.build("base_checkpoint", {}, {}, produce, code_version="v1")
    asset = f"base_checkpoint_{uuid.uuid4().hex[:8]}"  # a fresh registered model per test run
    uri = cluster_env["MLFLOW_TRACKING_URI"]
    tracker = Tracker(uri, f"factory/cluster-test-{uuid.uuid4().hex[:8]}")
    with tracker.run(asset, {}) as run_id:
        MetricsTarget(uri, run_id, "train/").log({"loss": 2.5}, 1)  # how a job's rank 0 streams curves
        version = tracker.register_checkpoint(asset, manifest, store, run_id)
    with pytest.raises(RuntimeError), tracker.run(asset, {}) as failed_id:
        raise RuntimeError("stage failed")

    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "FINISHED" and client.get_run(failed_id).info.status == "FAILED"
    assert client.get_run(run_id).data.metrics["train/loss"] == 2.5
    mv = client.get_model_version_by_alias(f"factory-{asset}", ALIAS)
    assert mv.version == version and mv.run_id == run_id
    assert mv.source.startswith("mlflow-artifacts:") and mv.source.endswith(f"{run_id}/artifacts/checkpoint")

    # The weights are in the bucket, under the server's artifact root.
    import fsspec

    fs = fsspec.filesystem("s3", **localcluster.storage_options(state_dir))
    stored = [p for p in fs.find(f"{localcluster.BUCKET}/mlflow") if run_id in p]
    assert any(p.endswith("checkpoint/model.safetensors") for p in stored), stored

    # A fresh process with only the client environment (no store, no S3 settings of this process).
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    env.update(cluster_env, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", LOAD.format(name=f"factory-{asset}", digest=manifest.digest)],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "LOADED (1, 3, 64)" in proc.stdout

