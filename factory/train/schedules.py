"""Learning-rate and batch-size schedules (recipe: "Pre-Training Recipe").

- Initial pre-training: linear warmup to a peak, cosine decay to a floor (8e-5 -> 8e-7 over
  1.2M steps at full scale).
- Annealing: the learning rate falls linearly to 0.
- Batch-size ramp: the global batch grows in steps; the sample position is the number of samples
  consumed so far, so a ramped run and its resume read the same samples.
"""

from __future__ import annotations

import math
from typing import Literal

ScheduleKind = Literal["cosine", "linear_to_zero", "constant"]


def learning_rate(step: int, *, kind: ScheduleKind, peak: float, floor: float, warmup: int, total: int) -> float:
    """LR at optimizer step ``step`` (0-based) of a run of ``total`` steps."""
    if warmup > 0 and step < warmup:
        return peak * (step + 1) / warmup
    if kind == "constant":
        return peak
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    if kind == "cosine":
        return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))
    if kind == "linear_to_zero":
        return peak * (1.0 - progress)
    raise ValueError(f"unknown schedule {kind!r}; expected cosine, linear_to_zero or constant")


def batch_size_at(step: int, final: int, ramp: list[tuple[int, int]]) -> int:
    """Global batch size at ``step``: ramp is [(until_step, batch_size), ...] ascending; then ``final``."""
    for until, size in ramp:
        if step < until:
            return size
    return final


def samples_before(step: int, final: int, ramp: list[tuple[int, int]]) -> int:
    """Samples consumed by steps [0, step): the data position a resumed run starts from."""
    total, prev = 0, 0
    for until, size in ramp:
        if step <= prev:
            break
        total += (min(step, until) - prev) * size
        prev = until
    if step > prev:
        total += (step - prev) * final
    return total
