"""Shared body of every Ray job: validate the stage config, call the stage, stream metrics to MLflow.

A request is a JSON-able dict built by ``factory.runner``:
``{"asset", "target", "config_class", "config", "extra", "inputs": {name: folder}, "out",
"work_dir", "torch_threads", "num_cpus", "mlflow": {"tracking_uri", "run_id"}}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from factory.stage import StageContext
from factory.stages import _import


def _mlflow_sink(mlflow_cfg: dict[str, str] | None):
    if not mlflow_cfg or not mlflow_cfg.get("run_id"):
        return None
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=mlflow_cfg["tracking_uri"])
    run_id = mlflow_cfg["run_id"]

    def sink(metrics: dict[str, float], step: int | None) -> None:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                client.log_metric(run_id, f"train/{name}", float(value), step=step or 0)

    return sink


def execute(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(int(request.get("torch_threads", 2)))
    config = _import(request["config_class"])(**request["config"])
    fn = _import(request["target"])
    ctx = StageContext(
        work_dir=Path(request["work_dir"]) if request.get("work_dir") else None,
        metrics_sink=_mlflow_sink(request.get("mlflow")),
        num_cpus=int(request.get("num_cpus", 2)),
    )
    ctx.log(f"{request['asset']}: starting")
    inputs = {name: Path(path) for name, path in request["inputs"].items()}
    metadata = fn(config, inputs, Path(request["out"]), ctx, **request.get("extra", {}))
    ctx.log(f"{request['asset']}: done")
    return metadata


def cli(run) -> None:
    parser = argparse.ArgumentParser(description="Run one factory stage from a JSON request file.")
    parser.add_argument("request", type=Path)
    args = parser.parse_args()
    print(json.dumps(run(json.loads(args.request.read_text())), indent=2, default=str))
    sys.exit(0)
