"""The process environment of every factory process: the CLI, Dagster, Ray workers, tests.

One table, applied with ``setdefault`` so a user's own setting wins:
- hubs offline (nothing may download models or data at run time), quiet Great Expectations,
  no tokenizers thread pool inside forked workers;
- Ray Data's Parquet reader with a pool of 2 footer-reader actors instead of its default 32: each
  actor is a worker process, started anew for every ``read_parquet``, and the factory's reads are
  of a stage's parts (tens of files); on a 2-core node the 32 starts cost 20-45 s per pipeline.
  A corpus of thousands of files on object storage may want more: set the variable;
- DeepSpeed's accelerator and its per-machine C++ extension cache for training processes;
- ``RAY_AUTH_MODE=disabled`` only for the Ray the factory starts itself on this machine.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

PROCESS_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "RAY_DATA_PARQUET_FOOTER_NUM_ACTORS": "2",
}

# The embedded local Ray needs no auth token; a user's cluster keeps whatever auth it has.
EMBEDDED_RAY_ENV: dict[str, str] = {"RAY_AUTH_MODE": "disabled"}


def training_env(use_gpu: bool) -> dict[str, str]:
    """What DeepSpeed reads at import: the CPU accelerator without a GPU, and a C++ extension cache
    kept outside the checkout (its comm op compiles once per machine, ~1 min)."""
    env = {"TORCH_EXTENSIONS_DIR": str(Path.home() / ".cache" / "torch_extensions")}
    if not use_gpu:
        env["DS_ACCELERATOR"] = "cpu"
    return env


def apply_env(env: Mapping[str, str] = PROCESS_ENV) -> None:
    """Set each variable that the process does not already have."""
    for key, value in env.items():
        os.environ.setdefault(key, value)
