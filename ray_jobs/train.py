"""Ray job for training stages; sets up DeepSpeed's CPU accelerator and a per-machine op cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ray_jobs.entry import cli, execute


def run(request: dict[str, Any]) -> dict[str, Any]:
    # DeepSpeed compiles its comm op once per machine: keep the cache outside the clone.
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache" / "torch_extensions"))
    if request.get("accelerator", "cpu") == "cpu":
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    return execute(request)


if __name__ == "__main__":
    cli(run)
