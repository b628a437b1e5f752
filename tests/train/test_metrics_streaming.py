"""Step metrics of a distributed run reach the stage's MLflow run from rank 0 while it trains."""

import time

import pytest

from factory.core.stage import MetricsTarget, StageContext
from factory.train.config import TrainConfig
from factory.train.losses import LanguageModeling
from factory.train.stage_training import train_stage

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _ray_cluster():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def test_ddp_rank0_streams_metrics_to_the_run_while_training(packed, build_lm, tmp_path):
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("stream")).info.run_id
    target = MetricsTarget(uri, run_id, "train/")
    sunk: list[int | None] = []
    ctx = StageContext(work_dir=tmp_path / "work", metrics_target=target,
                       metrics_sink=lambda metrics, step: sunk.append(step), log=lambda _m: None)
    cfg = TrainConfig(steps=8, batch_size=4, lr=3e-3, schedule={"warmup_steps": 2}, log_every=2,
                      checkpoint={"every": 4}, seed=0, parallelism={"backend": "ddp", "num_workers": 2})
    result = train_stage("sft", cfg, build_lm, LanguageModeling(), packed, ctx)
    returned_ms = time.time() * 1000

    history = client.get_metric_history(run_id, "train/sft/loss")
    assert [m.step for m in history] == [2, 4, 6, 8]  # every log_every steps, once each
    assert [m.value for m in history] == pytest.approx([h["loss"] for h in result.history])
    stamps = [m.timestamp for m in history]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # logged step by step, not in one batch
    # Logged while the workers ran, before Ray Train tore the group down and the driver returned.
    assert returned_ms - stamps[-1] > 100
    assert "train/sft/lr" in client.get_run(run_id).data.metrics
    # The context still has the whole curve; its sink did not send it a second time.
    assert [step for step, _ in ctx.history] == [2, 4, 6, 8] and sunk == []
