"""Progress of a graph run: one line per asset as its step finishes, with an estimate of what is left.

``[k/N] asset: reused | built in Ns  (~T left)``, printed from the run's Dagster events (the
instance's event listener sees each event as the in-process run stores it).

Estimator: every finished asset's step time is kept per profile in ``<home>/timings/<profile>.json``
as ``{asset: {"built": s, "reused": s}}`` (the last step time of each kind). Before the run, the
selected assets whose artifact key would change (``Runner.is_stale``: config, stage code, inputs,
external files; a selected input that will be rebuilt makes its consumers stale) are the ones
expected to be built, the others to be reused. What is left is the sum, over the assets not yet
finished, of their last time of the expected kind; an asset without one is counted as "untimed".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from factory.core.files import atomic_write_text
from factory.runner import Runner

Timings = dict[str, dict[str, float]]


def duration(seconds: float) -> str:
    """12s, 4m05s, 2h07m."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def time_left(remaining: list[str], building: set[str], timings: Timings) -> tuple[float, int]:
    """(estimated seconds, number of untimed assets) for the assets in ``remaining``."""
    seconds, untimed = 0.0, 0
    for asset in remaining:
        kind = "built" if asset in building else "reused"
        known = timings.get(asset, {}).get(kind)
        if known is None:
            untimed += 1
        else:
            seconds += known
    return seconds, untimed


def progress_line(k: int, n: int, asset: str, reused: bool | None, seconds: float, left: tuple[float, int]) -> str:
    """One asset's line; ``reused`` None means its step failed."""
    what = "reused" if reused else f"{'FAILED after' if reused is None else 'built in'} {duration(seconds)}"
    line = f"[{k}/{n}] {asset}: {what}"
    if k == n:
        return line
    estimate, untimed = left
    more = f", +{untimed} untimed" if untimed else ""
    return f"{line}  (~{duration(estimate)} left{more})"


def expected_builds(runner: Runner, selection: list[str]) -> set[str]:
    """The selected assets whose artifact key would change if the run started now."""
    building: set[str] = set()
    for spec in runner.specs.values():
        if spec.asset in selection and runner.is_stale(spec, any(i in building for i in spec.inputs)):
            building.add(spec.asset)
    return building


class RunProgress:
    """Listener of one run's events (``DagsterInstance.add_event_listener``): prints a line per
    finished asset step and records its time in the timings file."""

    def __init__(self, selection: list[str], building: set[str], timings_file: Path):
        self.selection = selection
        self.building = building
        self.timings_file = timings_file
        self.timings: Timings = json.loads(timings_file.read_text()) if timings_file.exists() else {}
        self.started: dict[str, float] = {}  # step key (= asset key) -> its STEP_START timestamp
        self.finished: list[str] = []

    def estimate(self) -> tuple[float, int]:
        return time_left([a for a in self.selection if a not in self.finished], self.building, self.timings)

    def on_event(self, entry: Any) -> None:
        event = entry.dagster_event
        step = entry.step_key
        if event is None or step not in self.selection:
            return  # run-level events, and the asset checks' steps
        if event.is_step_start:
            self.started[step] = entry.timestamp
        elif event.is_step_materialization or event.is_step_failure:
            reused = bool(event.step_materialization_data.materialization.metadata["reused"].value) \
                if event.is_step_materialization else None
            self.finish(step, reused, entry.timestamp - self.started.get(step, entry.timestamp))

    def finish(self, asset: str, reused: bool | None, seconds: float) -> None:
        self.finished.append(asset)
        if reused is not None:
            self.timings.setdefault(asset, {})["reused" if reused else "built"] = round(seconds, 2)
            self.timings_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(self.timings_file, json.dumps(self.timings, indent=1, sort_keys=True))
        line = progress_line(len(self.finished), len(self.selection), asset, reused, seconds, self.estimate())
        # One write with its newline: the step's log lines (stderr, often the same file) cannot land inside it.
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
