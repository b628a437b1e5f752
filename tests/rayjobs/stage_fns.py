"""Stage functions for the Ray Job tests (imported by the job process through its PYTHONPATH)."""

import time

from pydantic import Field

from factory.core.stage import StageConfig


class SlowConfig(StageConfig):
    seconds: float = Field(300.0, description="How long the stage sleeps.")


def failing_stage(cfg, inputs, out, ctx, **extra):
    raise ValueError("stage exploded: the answer is 41")


def slow_stage(cfg, inputs, out, ctx, **extra):
    ctx.log("slow stage: sleeping")
    time.sleep(cfg.seconds)
    return {}
