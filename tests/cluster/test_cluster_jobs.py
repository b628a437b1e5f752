"""A stage on the local 2-node cluster (profile cluster-local): submitted as a Ray Job to the head's
Jobs API with the checkout as its working_dir (run by the nodes' venv python, nothing set by hand),
placed on the worker node by the profile's runtime.resources, the job downloads nothing (raw_crawl
has no inputs), commits its artifact to the cluster's S3 itself and records the node it ran on."""

import pytest

from factory import localcluster
from factory.config import load_profile
from factory.raycluster import job_client
from factory.runner import Runner

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_raw_crawl_runs_as_a_job_on_the_worker_node_and_lands_in_s3(local_cluster, tmp_path, monkeypatch):
    state = local_cluster
    env = localcluster.client_env(state=state)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    outcome = Runner(load_profile("cluster-local"), log=print).materialize("raw_crawl")

    assert str(outcome.path).startswith("s3://factory/artifacts/raw_crawl/")
    import fsspec

    fs = fsspec.filesystem("s3", **localcluster.storage_options(state=state))
    stored = set(fs.ls(str(outcome.path).removeprefix("s3://")))
    assert any(p.endswith("manifest.json") for p in stored) and any(p.endswith("crawl.json") for p in stored)

    meta = outcome.manifest.metadata
    job = job_client(env["RAY_API_SERVER_ADDRESS"]).get_job_info(meta["ray_job_id"])
    assert job.status == "SUCCEEDED"
    assert job.entrypoint.startswith("python -m ray_jobs.curate ")
    assert job.runtime_env["working_dir"].startswith("gcs://")
    from ray.util.state import list_nodes

    # Through the dashboard's state API (HTTP), not a Ray Client connection.
    nodes = {n.node_id: n for n in list_nodes(address=env["RAY_API_SERVER_ADDRESS"]) if n.state == "ALIVE"}
    assert "node_worker" in nodes[job.driver_node_id].resources_total  # placed by runtime.resources.raw_crawl
    # The driver joined a raylet of the cluster (the head's: both nodes share this host, see docs/cluster.md).
    assert meta["ray_node_id"] in nodes
