"""The whole graph on the local 2-node cluster (profile ``cluster-local``, smoke sizes) through
Dagster: every stage a Ray Job submitted through Dagster Pipes, artifacts in the cluster's S3 and
nowhere in the local home, lineage audited against S3, the chat model registered on the MLflow
server and loaded back by ``mlflow.transformers`` in a fresh process, and a cancelled
materialization that stops its Ray job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from factory import localcluster
from factory.config import PROFILES_DIR, load_profile
from factory.raycluster import job_client
from factory.stages import stage_specs
from factory.store import MANIFEST, ArtifactStore

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.e2e]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = f"s3://{localcluster.BUCKET}/artifacts"


def _client_env(cluster: dict, home: Path) -> dict[str, str]:
    """This process's environment, without any other Ray/MLflow, plus the cluster's client settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_", "AWS_", "FACTORY_"))}
    env.update(localcluster.client_env(state=cluster))
    env.update(FACTORY_HOME=str(home), DAGSTER_HOME=str(home / "dagster"))
    return env


@pytest.fixture(scope="module")
def chain(local_cluster, tmp_path_factory):
    state_dir = local_cluster["state_dir"]
    if not localcluster.status(state_dir)["up"]:  # another module's test may have brought it down
        localcluster.up(state_dir, base=local_cluster["port_base"], log=print)
    home = tmp_path_factory.mktemp("chain-home")
    env = _client_env(localcluster.read_state(state_dir), home)
    # Everything the release is built from (eval_report, which only reads the release, is left out).
    assets = [s.asset for s in stage_specs(load_profile("cluster-local")) if s.asset != "eval_report"]
    t0 = time.monotonic()
    with open(home / "run.log", "w") as log:  # followable while it runs
        proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", "--profile", "cluster-local", *assets],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=3600)
    assert proc.returncode == 0, (home / "run.log").read_text()[-6000:]
    print(f"{len(assets)} assets on cluster-local: {time.monotonic() - t0:.0f} s")
    return {"home": home, "env": env, "state_dir": state_dir, "assets": assets,
            "store": ArtifactStore(ARTIFACTS, local_dir=home / "audit",
                                   storage_options=localcluster.storage_options(state_dir))}


def test_every_stage_ran_as_a_ray_job_and_both_nodes_did_work(chain):
    store, env = chain["store"], chain["env"]
    client = job_client(env["RAY_API_SERVER_ADDRESS"])
    used: set[str] = set()
    for asset in chain["assets"]:
        meta = store.latest(asset).metadata
        info = client.get_job_info(meta["ray_job_id"])
        assert info.status == "SUCCEEDED" and info.metadata["factory.asset"] == asset
        assert meta["ray_job_node_id"] == info.driver_node_id  # where Ray placed the job
        used |= {meta["ray_job_node_id"], meta["ray_node_id"], *meta.get("ray_worker_node_ids", [])}
    from ray.util.state import list_nodes

    alive = {n.node_id for n in list_nodes(address=env["RAY_API_SERVER_ADDRESS"]) if n.state == "ALIVE"}
    assert len(alive) == 2 and used == alive


def test_artifacts_live_in_the_bucket_and_not_in_the_local_home(chain):
    import fsspec

    fs = fsspec.filesystem("s3", **localcluster.storage_options(chain["state_dir"]))
    for asset in chain["assets"]:
        manifest = chain["store"].latest(asset)
        stored = {p.rsplit("/", 1)[-1] for p in fs.find(f"{localcluster.BUCKET}/artifacts/{asset}/{manifest.key}")}
        assert MANIFEST in stored and {Path(f).name for f in manifest.files} <= stored, asset
    home = chain["home"]
    assert not (home / "artifacts").exists()
    assert not [p for p in home.rglob(MANIFEST) if "audit" not in p.parts]


def _lineage(chain) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", "lineage", "quantized_release",
                           "--profile", "cluster-local"], cwd=ROOT, env=chain["env"],
                          capture_output=True, text=True, timeout=600)


def test_lineage_passes_against_s3_and_fails_after_one_flipped_byte(chain):
    ok = _lineage(chain)
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    assert "raw_crawl" in ok.stdout and "OK:" in ok.stdout

    import fsspec

    fs = fsspec.filesystem("s3", **localcluster.storage_options(chain["state_dir"]))
    manifest = chain["store"].latest("tokenizer")
    rel = sorted(manifest.files)[0]
    key = f"{localcluster.BUCKET}/artifacts/tokenizer/{manifest.key}/{rel}"
    original = fs.cat_file(key)
    flipped = bytearray(original)
    flipped[len(flipped) // 2] ^= 0x01
    fs.pipe_file(key, bytes(flipped))
    try:
        bad = _lineage(chain)
        assert bad.returncode != 0
        assert f"tokenizer/{manifest.key}/{rel}: sha256 differs from manifest" in bad.stdout + bad.stderr
    finally:
        fs.pipe_file(key, original)


GENERATE = """
import mlflow
pipe = mlflow.transformers.load_model("models:/factory-chat@current")
out = pipe("What is 12+7?", max_new_tokens=4, do_sample=False)
print("GENERATED", type(pipe).__name__, repr(out[0]["generated_text"]))
"""


def test_the_registered_chat_model_loads_with_mlflow_transformers_in_a_fresh_process(chain, tmp_path):
    # Only the client environment: the model comes from the MLflow server, its files from S3.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "TMPDIR") if k in os.environ}
    env.update(localcluster.client_env(chain["state_dir"]))
    proc = subprocess.run([sys.executable, "-c", GENERATE], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GENERATED TextGenerationPipeline 'What is 12+7?" in proc.stdout


def test_cancelling_a_running_materialization_stops_its_ray_job_within_30_s(chain, tmp_path,
                                                                            interrupt_and_await_stop):
    """A longer base_checkpoint (another key: it must train) materialized through Dagster in another
    process, interrupted once its job is training, as terminating the run does to its step process."""
    profile = yaml.safe_load((PROFILES_DIR / "cluster-local.yaml").read_text())
    profile["base_checkpoint"]["train"]["steps"] = 100_000
    long_profile = tmp_path / "cluster-local-long.yaml"
    long_profile.write_text(yaml.safe_dump(profile))
    env = {**chain["env"], "DAGSTER_HOME": str(tmp_path / "dagster")}
    client = job_client(env["RAY_API_SERVER_ADDRESS"])
    before = {j.submission_id for j in client.list_jobs()}
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "run", "--profile", str(long_profile),
                             "base_checkpoint"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        job_id = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the Dagster run ended before its job trained"
            if job_id is None:
                job_id = next((j.submission_id for j in client.list_jobs() if j.submission_id not in before
                               and j.metadata.get("factory.asset") == "base_checkpoint"), None)
            if job_id and "step" in client.get_job_logs(job_id):
                break
            time.sleep(1)
        else:
            pytest.fail("the long base_checkpoint job never started training")
        interrupt_and_await_stop(proc, client, job_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    import mlflow

    runs = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"]).search_runs(
        [mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
         .get_experiment_by_name("factory/cluster-local-long").experiment_id],
        filter_string="tags.`factory.asset` = 'base_checkpoint'")
    assert [r.info.status for r in runs] in (["KILLED"], ["FAILED"])
