"""The body of every stage job (docs/architecture.md, "How one asset is materialized").

A request is a JSON-able dict built by ``factory.runner``:
``{"asset", "target", "config_class", "config", "extra", "inputs": {name: folder}, "out",
"work_dir", "torch_threads", "num_cpus", "accelerator", "mlflow": {"tracking_uri", "run_id"}}``.

``run_job(kind, request)`` prepares the process for the job's kind (``curate``: corpus work;
``train``: anything with a model, which also needs DeepSpeed's environment), validates the stage
config, calls the stage function and streams its step metrics to the request's MLflow run. The
runner calls it inside a Ray task; ``ray_jobs/<kind>.py`` calls it from a command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from factory.core.environment import apply_env, training_env
from factory.core.stage import MetricsTarget, StageContext
from factory.stages import load_object

JOB_KINDS = ("curate", "train")


def _metrics_target(mlflow_cfg: dict[str, str] | None) -> MetricsTarget | None:
    """The request's MLflow run as the stage's metrics target (curves named ``train/<metric>``)."""
    if not mlflow_cfg or not mlflow_cfg.get("run_id"):
        return None
    return MetricsTarget(mlflow_cfg["tracking_uri"], mlflow_cfg["run_id"], "train/")


def run_job(kind: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run the stage named in ``request`` as a job of ``kind``; returns the stage's metadata."""
    if kind not in JOB_KINDS:
        raise ValueError(f"unknown job kind {kind!r}; expected one of {JOB_KINDS}")
    apply_env()
    if kind == "train":
        apply_env(training_env(use_gpu=request.get("accelerator", "cpu") != "cpu"))
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
    )
    ctx.log(f"{request['asset']}: starting")
    inputs = {name: Path(path) for name, path in request["inputs"].items()}
    metadata = fn(config, inputs, Path(request["out"]), ctx, **request.get("extra", {}))
    ctx.log(f"{request['asset']}: done")
    return metadata
