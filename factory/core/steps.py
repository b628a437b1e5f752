"""Named sub-steps of a stage, timed and counted one way (the stage's ``steps`` metadata).

A stage creates one ``Steps`` recorder, wraps each sub-step in ``steps.step(name)`` and reports
what the step did through ``count``; ``summary()`` goes into the stage's metadata as ``"steps"``::

    steps = Steps("filtered_corpus", ctx.log)
    with steps.step("heuristics") as s:
        ...
        s.count(kept=len(kept), dropped=len(df) - len(kept))
    return {..., "steps": steps.summary()}

Summary shape, in the order the steps first started::

    {"heuristics": {"seconds": 1.234, "counts": {"kept": 60, "dropped": 6}}, ...}

Rules:
- ``count(**n)`` adds to the step's counts (numbers; calling it twice with one key sums them).
- A step name used again (a loop over items) accumulates: seconds and counts add up.
- A step opened inside another is recorded as ``"outer.inner"``; the outer step's seconds include it.
- An exception inside a step still records the step's seconds, marks the entry ``"error"`` with
  the exception's type name, and propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Step:
    """One named step's record: wall seconds, reported counts and, if it raised, the error type."""

    name: str
    seconds: float = 0.0
    counts: dict[str, int | float] = field(default_factory=dict)
    error: str | None = None

    def count(self, **counts: int | float) -> None:
        """Add to the step's counts (``s.count(kept=10, dropped=2)``)."""
        for key, n in counts.items():
            self.counts[key] = self.counts.get(key, 0) + n

    def summary(self, digits: int = 3) -> dict[str, Any]:
        out: dict[str, Any] = {"seconds": round(self.seconds, digits), "counts": dict(self.counts)}
        if self.error is not None:
            out["error"] = self.error
        return out


class Steps:
    """Recorder of a stage's named steps; ``log`` (the stage context's) gets one line per finished step."""

    def __init__(self, stage: str, log: Callable[[str], None] | None = None) -> None:
        self.stage = stage
        self.log = log
        self.records: dict[str, Step] = {}
        self._open: list[str] = []
        self._start = time.perf_counter()

    @contextmanager
    def step(self, name: str) -> Iterator[Step]:
        full = ".".join([*self._open, name])
        record = self.records.setdefault(full, Step(full))
        self._open.append(name)
        t0 = time.perf_counter()
        try:
            yield record
        except BaseException as exc:
            record.error = type(exc).__name__
            raise
        finally:
            dt = time.perf_counter() - t0
            record.seconds += dt
            self._open.pop()
            if self.log is not None:
                counts = ", ".join(f"{k}={v}" for k, v in record.counts.items())
                status = f" FAILED ({record.error})" if record.error is not None else ""
                self.log(f"{self.stage}: {full} {dt:.2f}s{status}" + (f" [{counts}]" if counts else ""))

    @property
    def total_seconds(self) -> float:
        """Wall seconds since the recorder was created."""
        return time.perf_counter() - self._start

    def summary(self, digits: int = 3) -> dict[str, dict[str, Any]]:
        """Every step's ``{"seconds", "counts"[, "error"]}``, by name, in the order they first started."""
        return {name: record.summary(digits) for name, record in self.records.items()}
