"""The Dagster instance settings the factory needs: ``$DAGSTER_HOME/dagster.yaml`` (written when absent).

Runs are queued (at most ``MAX_CONCURRENT_RUNS`` in progress) and every training stage (a ``train``
Ray job) carries the pool ``TRAINING_POOL`` (``assets/graph.py``), whose limit is the pools'
``default_limit``: the queue starts a run that trains only while no other such run is in progress,
since two trainings would share the machine's (or the cluster's) CPUs and accelerators. Granularity
``run``: the queue (the daemon of ``dagster dev``) enforces it, and its run monitoring frees what a
killed run held; with ``op`` the executor would claim slots per step, and a ``make run``
(``execute_in_process``, no daemon) killed mid-training would hold its slot for ever, blocking
every later one. Two runs of one
asset are safe anyway (the store's per-key lock, ``factory/locks.py``); the pool keeps trainings
from slowing each other down. In this Dagster version the limits live under ``concurrency:``
(``runs`` and ``pools``); ``run_queue: max_concurrent_runs`` is refused beside them. A user's own
``dagster.yaml`` is never overwritten.

``python -m assets.instance`` writes it into ``$DAGSTER_HOME`` (``make ui`` does, before ``dagster dev``).
"""

import os
from pathlib import Path
from typing import Any

import yaml

TRAINING_POOL = "training"
MAX_CONCURRENT_RUNS = 4
TRAINING_SLOTS = 1


def instance_settings() -> dict[str, Any]:
    return {
        "concurrency": {
            "runs": {"max_concurrent_runs": MAX_CONCURRENT_RUNS},
            "pools": {"default_limit": TRAINING_SLOTS, "granularity": "run"},
        },
        "telemetry": {"enabled": False},
    }


def ensure_dagster_yaml(home: str | Path) -> Path:
    """``<home>/dagster.yaml`` with ``instance_settings()`` unless one exists; returns its path."""
    path = Path(home) / "dagster.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(yaml.safe_dump(instance_settings(), sort_keys=False))
    return path


if __name__ == "__main__":
    print(ensure_dagster_yaml(os.environ["DAGSTER_HOME"]))
