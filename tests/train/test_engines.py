"""Distributed engines on a local Ray cluster: DDP with a killed worker, DeepSpeed ZeRO-2.

Each test is one Ray Train run (~20-25 s of fixed start-up on an idle 2-core machine); the
single-process run of the same config is the reference curve, since every backend trains on the
same global batches.
"""

import pytest

from factory.train.config import TrainConfig
from factory.train.losses import LanguageModeling
from factory.train.trainer import train

pytestmark = pytest.mark.slow

# gloo all-reduce averages two half-batch gradients where one process sums one whole batch:
# the same math in another float order, so curves agree to float32 rounding, not bit for bit.
DISTRIBUTED_TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _ray_cluster():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _cfg(**kw) -> TrainConfig:
    base = {"steps": 8, "batch_size": 4, "lr": 3e-3, "schedule": {"warmup_steps": 2}, "log_every": 1,
            "checkpoint": {"every": 3}, "seed": 0}
    return TrainConfig(**{**base, **kw})


def _quiet(_msg: str) -> None:
    pass


def test_ddp_run_survives_a_killed_worker_and_continues_the_same_curve(packed, build_lm, tmp_path):
    reference = train(_cfg(), build_lm, LanguageModeling(), packed, log=_quiet)
    cfg = _cfg(parallelism={"backend": "ddp", "num_workers": 2, "max_failures": 1})
    result = train(cfg, build_lm, LanguageModeling(), packed, checkpoint_dir=tmp_path, kill_at=[4])
    print(f"DDP with one killed worker: goodput {result.final['goodput']:.1%} over {result.wall_s:.1f}s wall, "
          f"{result.restarts} restart, {result.lost_steps} lost step")
    assert result.steps == 8 and result.restarts == 1
    assert result.lost_steps == 1  # step 4 ran, the worker died, the group resumed from step 3
    assert [h["step"] for h in result.history] == list(range(1, 9))
    for h, ref in zip(result.history, reference.history, strict=True):
        assert h["loss"] == pytest.approx(ref["loss"], abs=DISTRIBUTED_TOL)
    assert 0 < result.final["goodput"] < 1
    for (name, a), b in zip(result.model.state_dict().items(), reference.model.state_dict().values(), strict=True):
        assert (a - b).abs().max() < 1e-4, name


def test_deepspeed_zero2_run_completes(packed, build_lm, tmp_path):
    reference = train(_cfg(steps=4), build_lm, LanguageModeling(), packed, log=_quiet)
    cfg = _cfg(steps=4, parallelism={"backend": "deepspeed", "num_workers": 2, "zero_stage": 2})
    result = train(cfg, build_lm, LanguageModeling(), packed, checkpoint_dir=tmp_path)
    assert result.steps == 4 and result.restarts == 0
    assert (tmp_path / "step-00000004" / "deepspeed").is_dir()  # ZeRO shards beside the full weights
    for h, ref in zip(result.history, reference.history, strict=True):
        assert h["loss"] == pytest.approx(ref["loss"], abs=1e-4)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
