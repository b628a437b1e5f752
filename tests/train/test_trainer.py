"""The one training loop in one process: exact resume, batch-ramp data positions, micro-batches, bf16."""

from pathlib import Path

import pytest
import torch

from factory.train.config import TrainConfig
from factory.train.data import PackedTokens
from factory.train.losses import LanguageModeling
from factory.train.trainer import bf16_native, describe, train


def _cfg(**kw) -> TrainConfig:
    base = {"steps": 8, "batch_size": 4, "lr": 3e-3, "schedule": {"warmup_steps": 2}, "log_every": 1, "seed": 0}
    return TrainConfig(**{**base, **kw})


def _quiet(_msg: str) -> None:
    pass


def test_resume_continues_the_same_loss_curve(packed, build_lm, tmp_path):
    cfg = _cfg(checkpoint={"every": 3, "async": True})
    full = train(cfg, build_lm, LanguageModeling(), packed, log=_quiet)
    first = train(cfg, build_lm, LanguageModeling(), packed, checkpoint_dir=tmp_path, stop_after=5, log=_quiet)
    assert first.steps == 5
    resumed = train(cfg, build_lm, LanguageModeling(), packed, checkpoint_dir=tmp_path, log=_quiet)
    assert resumed.resumed_from == 3  # the checkpoint at step 3; steps 4-5 are recomputed
    assert [h["step"] for h in resumed.history] == [4, 5, 6, 7, 8]
    for h, ref in zip(resumed.history, full.history[3:], strict=True):
        assert h["loss"] == pytest.approx(ref["loss"], abs=1e-6)
    assert full.history[-1]["loss"] < full.history[0]["loss"]
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    summary = describe(resumed)
    assert summary["steps"] == 8 and 0 < summary["final_goodput"] <= 1


class RecordingSource:
    """Wraps a batch source and records every (offset, batch_size) the trainer asks for."""

    def __init__(self, inner: PackedTokens):
        self.inner, self.calls = inner, []

    def batch(self, offset: int, batch_size: int):
        self.calls.append((offset, batch_size))
        return self.inner.batch(offset, batch_size)


def test_batch_ramp_reads_consecutive_sample_positions_and_resumes_there(packed, build_lm, tmp_path):
    cfg = _cfg(steps=6, batch_size=8, schedule={"warmup_steps": 2, "batch_ramp": [(2, 2), (4, 4)]},
               checkpoint={"every": 3})
    source = RecordingSource(packed)
    train(cfg, build_lm, LanguageModeling(), source, checkpoint_dir=tmp_path, stop_after=4, log=_quiet)
    assert source.calls == [(0, 2), (2, 2), (4, 4), (8, 4)]
    source.calls.clear()
    result = train(cfg, build_lm, LanguageModeling(), source, checkpoint_dir=tmp_path, log=_quiet)
    assert source.calls == [(8, 4), (12, 8), (20, 8)]  # resumed at step 3 = sample 8
    assert [h["batch_size"] for h in result.history] == [4, 8, 8]


def test_micro_batches_accumulate_to_the_full_batch_gradient(packed, build_lm):
    whole = train(_cfg(steps=3), build_lm, LanguageModeling(), packed, log=_quiet)
    micro = train(_cfg(steps=3, parallelism={"micro_batch_size": 1}), build_lm, LanguageModeling(), packed, log=_quiet)
    for a, b in zip(whole.history, micro.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)


def test_bf16_trains_and_reports_throughput(packed, build_lm):
    lines: list[str] = []
    result = train(_cfg(precision="bf16", steps=10), build_lm, LanguageModeling(), packed, log=lines.append)
    # Without native bf16 (AVX2-only CPUs) autocast would be ~100x slower: the loop says so and runs fp32.
    assert any("no native bf16" in line for line in lines) != bf16_native(torch.device("cpu"))
    assert result.history[-1]["loss"] < result.history[0]["loss"] - 0.2
    assert result.history[-1]["tokens_per_s"] > 0 and 0 < result.history[-1]["mfu"] < 1
    assert result.tokens == 10 * 4 * 16


def test_config_rejects_batches_that_do_not_split_across_workers():
    with pytest.raises(ValueError, match="divisible by num_workers"):
        TrainConfig(steps=1, batch_size=6, lr=1e-3, parallelism={"backend": "ddp", "num_workers": 4})
    with pytest.raises(ValueError, match="backend=single"):
        TrainConfig(steps=1, batch_size=4, lr=1e-3, parallelism={"num_workers": 2})


def test_kill_injection_needs_a_distributed_run(packed, build_lm, tmp_path: Path):
    with pytest.raises(ValueError, match="num_workers > 1"):
        train(_cfg(), build_lm, LanguageModeling(), packed, checkpoint_dir=tmp_path, kill_at=[2])
