"""The stage contract every step of the recipe follows (docs/architecture.md, "Artifacts").

A stage is a pure function of a frozen config and its inputs' artifacts::

    run(cfg: SomeStageConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict

``inputs`` maps an upstream asset name to the folder of its artifact (read-only); the stage writes
its files under ``out`` (a fresh temporary folder that the artifact store renames into place when
the stage returns) and returns JSON-able metadata (counts, metrics) that lands in the manifest,
in Dagster and in MLflow. Stages never decide paths or environments themselves.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class StageConfig(BaseModel):
    """Base of every stage config: unknown keys fail loudly, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _print(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class MetricsTarget:
    """An MLflow run that step metrics go to straight from the process producing them (picklable:
    it travels to Ray Train workers, whose rank 0 logs while the run trains). ``prefix`` starts every
    metric name. The client is made on first use, in the process that logs."""

    tracking_uri: str
    run_id: str
    prefix: str = ""

    def with_prefix(self, prefix: str) -> MetricsTarget:
        return MetricsTarget(self.tracking_uri, self.run_id, self.prefix + prefix)

    def log(self, metrics: dict[str, float], step: int | None) -> None:
        """Log the numeric values of ``metrics`` at ``step`` in one request."""
        import time as _time

        from mlflow import MlflowClient
        from mlflow.entities import Metric

        client = _CLIENTS.get(self.tracking_uri)
        if client is None:
            client = _CLIENTS[self.tracking_uri] = MlflowClient(tracking_uri=self.tracking_uri)
        now = int(_time.time() * 1000)
        batch = [Metric(f"{self.prefix}{k}", float(v), now, step or 0) for k, v in metrics.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if batch:
            client.log_batch(self.run_id, metrics=batch)


_CLIENTS: dict[str, object] = {}  # one MlflowClient per tracking URI and process


@dataclass
class StageContext:
    """What a running stage may use besides its inputs: progress lines, step metrics, and a
    resumable ``work_dir`` tied to the artifact's key (kept if the stage is interrupted, deleted
    once the artifact is complete) where training stages keep their checkpoints.

    One context serves one stage run: the artifact store makes one per materialization, and an
    ad-hoc call should too (its checkpoint folders are the context's, see ``checkpoint_dir``).
    """

    work_dir: Path | None = None
    log: Callable[[str], None] = _print
    metrics_sink: Callable[[dict[str, float], int | None], None] | None = None
    # The run metrics_sink writes to, for code that logs from other processes (distributed training).
    metrics_target: MetricsTarget | None = None
    num_cpus: int = 2
    history: list[tuple[int | None, dict[str, float]]] = field(default_factory=list)
    _scratch: tempfile.TemporaryDirectory | None = field(default=None, init=False, repr=False, compare=False)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None, *, sink: bool = True) -> None:
        """Record step metrics and send them to the sink; ``sink=False`` only records them (they
        already went to ``metrics_target`` from another process)."""
        self.history.append((step, dict(metrics)))
        if sink and self.metrics_sink is not None:
            self.metrics_sink(metrics, step)

    def checkpoint_dir(self, name: str) -> Path:
        """The folder where the training run ``name`` of this stage keeps its checkpoints (created).

        ``work_dir/name`` when the stage has a work folder, so an interrupted build resumes; in an
        ad-hoc call without one, ``name`` under a temporary folder this context owns (removed with
        the context). Either way the same name gives the same folder for the context's lifetime.
        """
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise ValueError(f"checkpoint folder name {name!r} must be a relative path inside the work folder")
        if self.work_dir is not None:
            root = Path(self.work_dir)
        else:
            if self._scratch is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="factory-stage-")
            root = Path(self._scratch.name)
        path = root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
