"""Learning-rate and batch-size schedules (recipe: warmup + cosine to a floor, linear anneal, batch ramp)."""

import math

import pytest

from factory.train.schedules import batch_size_at, learning_rate, samples_before


def test_cosine_hits_warmup_peak_and_floor():
    kw = {"kind": "cosine", "peak": 8e-5, "floor": 8e-7, "warmup": 10, "total": 100}
    assert learning_rate(0, **kw) == pytest.approx(8e-6)  # linear warmup from peak / warmup
    assert learning_rate(9, **kw) == pytest.approx(8e-5)  # peak at the end of warmup
    assert learning_rate(10, **kw) == pytest.approx(8e-5)
    assert learning_rate(55, **kw) == pytest.approx(8e-7 + 0.5 * (8e-5 - 8e-7))  # half-way: mid-point
    assert learning_rate(100, **kw) == pytest.approx(8e-7)  # floor
    lrs = [learning_rate(s, **kw) for s in range(10, 101)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:], strict=False))  # consecutive pairs


def test_linear_to_zero_and_constant():
    assert learning_rate(0, kind="linear_to_zero", peak=1.0, floor=0.5, warmup=0, total=10) == 1.0
    assert learning_rate(5, kind="linear_to_zero", peak=1.0, floor=0.5, warmup=0, total=10) == 0.5
    assert learning_rate(10, kind="linear_to_zero", peak=1.0, floor=0.5, warmup=0, total=10) == 0.0
    assert learning_rate(7, kind="constant", peak=0.3, floor=0.0, warmup=2, total=10) == 0.3
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate(5, kind="step", peak=1.0, floor=0.0, warmup=0, total=10)


def test_batch_ramp_sizes_and_sample_positions():
    ramp = [(2, 4), (5, 8)]
    assert [batch_size_at(s, 16, ramp) for s in range(7)] == [4, 4, 8, 8, 8, 16, 16]
    # samples_before is the running sum of the batch sizes of the steps before.
    sizes = [batch_size_at(s, 16, ramp) for s in range(10)]
    assert [samples_before(s, 16, ramp) for s in range(11)] == [sum(sizes[:s]) for s in range(11)]
    assert samples_before(3, 16, []) == 48
    assert not math.isnan(samples_before(0, 16, ramp))
