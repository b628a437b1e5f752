"""The body of every stage job (docs/architecture.md, "How one asset is materialized").

A request is a JSON-able dict built by ``factory.runner``:
``{"asset", "target", "config_class", "config", "extra", "inputs": {name: folder}, "out",
"work_dir", "torch_threads", "num_cpus", "accelerator", "resources": {"driver", "worker"},
"mlflow": {"tracking_uri", "run_id"}}``.

``run_job(kind, request)`` prepares the process for the job's kind (``curate``: corpus work;
``train``: anything with a model, which also needs DeepSpeed's environment), validates the stage
config, calls the stage function under the stage's placement (``factory.core.resources``: the
device it trains on, what its Ray Train workers and grid runs ask for) and streams its step
metrics to the request's MLflow run.

``run_stage_job(kind, request)`` is what a Ray Job runs (``python -m ray_jobs.<kind>``): the request
then also names the artifact store (``"store": {"root", "local_dir"}``), the artifact's key config,
key and the driver's version of the stage's code, and carries the input *manifests* instead of folders. The job
itself stages: it downloads the inputs (``store.local_path``), runs the stage into a local staging
folder and commits the artifact (``ArtifactStore.build``: hashes, uploads, manifest last), so it
can run on any node that reaches the store. It returns ``{"manifest", "reused", "metadata"}``; the
metadata records the Ray node the job ran on and the nodes its tasks and actors used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from factory.core.environment import apply_env, training_env
from factory.core.resources import Placement, StageResources, use
from factory.core.stage import MetricsTarget, StageContext
from factory.stages import load_object

JOB_KINDS = ("curate", "train")
METRICS_PREFIX = "train/"  # the stage's curves in its MLflow run: train/<metric>, train/<run>/<metric>


def _metrics_target(mlflow_cfg: dict[str, str] | None) -> MetricsTarget | None:
    """The request's MLflow run as the stage's metrics target (curves named ``train/<metric>``)."""
    if not mlflow_cfg or not mlflow_cfg.get("run_id"):
        return None
    return MetricsTarget(mlflow_cfg["tracking_uri"], mlflow_cfg["run_id"], METRICS_PREFIX)


def run_job(kind: str, request: dict[str, Any], log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the stage named in ``request`` as a job of ``kind``; returns the stage's metadata."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {JOB_KINDS}")
    apply_env()
    resources = StageResources(**request.get("resources", {}))
    placement = Placement(request.get("accelerator", "cpu"), resources.worker)
    if kind == "train":
        apply_env(training_env(use_gpu=placement.use_gpu))
    import torch

    torch.set_num_threads(int(request.get("torch_threads", 2)))
    config = load_object(request["config_class"])(**request["config"])
    fn = load_object(request["target"])
    target = _metrics_target(request.get("mlflow"))
    ctx = StageContext(
        work_dir=Path(request["work_dir"]) if request.get("work_dir") else None,
        metrics_sink=target.log if target is not None else None,
        metrics_target=target,
        num_cpus=int(request.get("num_cpus", 2)),
        **({"log": log} if log is not None else {}),
    )
    ctx.log(f"{request['asset']}: starting")
    inputs = {name: Path(path) for name, path in request["inputs"].items()}
    with use(placement):
        metadata = fn(config, inputs, Path(request["out"]), ctx, **request.get("extra", {}))
    ctx.log(f"{request['asset']}: done")
    return metadata


def _in_ray_job() -> bool:
    """True in the driver process of a Ray Job (the job supervisor sets the job's config and address)."""
    return bool(os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR")) or bool(os.environ.get("RAY_ADDRESS"))


def _connect_ray() -> None:
    """Join the job's cluster before the stage runs: stages that use Ray (``ray.init(num_cpus=...)``
    when not initialized) would otherwise try to start a local one."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS") or "auto", log_to_driver=True)


def job_nodes(submission_id: str = "") -> dict[str, Any]:
    """Node ids of this job (Ray's state API): the node Ray placed the job on (``ray_job_node_id``, the
    Jobs API's ``driver_node_id``), the raylet its driver joined (``ray_node_id``: on one host with
    several nodes, always the head's) and the nodes its tasks and actors ran on."""
    import ray

    if not ray.is_initialized():
        return {}
    ctx = ray.get_runtime_context()
    nodes: dict[str, Any] = {"ray_node_id": ctx.get_node_id()}
    try:
        from ray.util.state import list_actors, list_tasks

        # The Jobs API knows the placement (the state API's job list leaves it empty), but only of a job's
        # driver, which Ray's job supervisor starts with this variable; the embedded launcher's task has none.
        if submission_id and "RAY_JOB_CONFIG_JSON_ENV_VAR" in os.environ:
            from ray.job_submission import JobSubmissionClient

            placed = JobSubmissionClient(os.environ.get("RAY_ADDRESS") or "auto").get_job_info(submission_id)
            if placed.driver_node_id:
                nodes["ray_job_node_id"] = placed.driver_node_id
        job = ctx.get_job_id()
        # This job's own cluster: "auto" would refuse to choose when another Ray runs on the machine.
        query = {"address": ctx.gcs_address, "filters": [("job_id", "=", job)], "limit": 10000, "timeout": 15,
                 "raise_on_missing_output": False}
        used = {t.node_id for t in list_tasks(**query) if t.node_id}
        used |= {a.node_id for a in list_actors(**query) if a.node_id}
        nodes["ray_worker_node_ids"] = sorted(used)
    except Exception as err:  # the record is informative; never fail a built artifact over it
        nodes["ray_worker_node_ids_error"] = str(err)[:200]
    return nodes


def run_stage_job(kind: str, request: dict[str, Any], log: Callable[[str], None] = print) -> dict[str, Any]:
    """The body of a stage's Ray Job: stage inputs, run the stage, commit the artifact (module doc)."""
    if "store" not in request:  # a plain request (local folders): just the stage
        return {"metadata": run_job(kind, request, log)}
    from factory.core.code_version import code_version
    from factory.store import ArtifactStore, Manifest, stage_key

    version = code_version(request["target"], request["config_class"])  # the stage's code in this checkout
    if request.get("code_version") and request["code_version"] != version:
        raise RuntimeError(f"the job runs {request['asset']} code {version} but the driver keyed the artifact with "
                           f"{request['code_version']}: ship the same checkout to the cluster")
    if _in_ray_job():
        _connect_ray()
    store = ArtifactStore(request["store"]["root"], local_dir=request["store"].get("local_dir"))
    inputs = {name: Manifest.from_dict(m) for name, m in request["inputs"].items()}
    key = stage_key(request["asset"], request["key_config"], inputs, code_version=version)
    if request.get("key") and request["key"] != key:
        raise RuntimeError(f"artifact key {key} differs from the driver's {request['key']}")

    def produce(out: Path, work: Path) -> dict[str, Any]:
        local = {name: str(store.local_path(m)) for name, m in inputs.items()}
        metadata = run_job(kind, {**request, "inputs": local, "out": str(out), "work_dir": str(work)}, log)
        mlflow_run = (request.get("mlflow") or {}).get("run_id")
        extra = {"mlflow_run_id": mlflow_run} if mlflow_run else {}
        if request.get("ray_job_id"):
            extra["ray_job_id"] = request["ray_job_id"]
        return {**(metadata or {}), **extra, **job_nodes(request.get("ray_job_id", ""))}

    manifest, reused = store.build(request["asset"], request["key_config"], inputs, produce, code_version=version,
                                   log=log)
    return {"manifest": json.loads(manifest.to_json()), "reused": reused, "metadata": manifest.metadata}
