"""The process environment of every factory process: the CLI, Dagster, Ray workers, tests.

One table, applied with ``setdefault`` so a user's own setting wins:
- hubs offline (nothing may download models or data at run time), quiet Great Expectations,
  no tokenizers thread pool inside forked workers;
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
