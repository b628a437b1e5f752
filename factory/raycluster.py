"""Connecting to Ray and running a stage as a Ray job (docs/architecture.md, "Layers").

The embedded default starts a local Ray in the calling process (``num_cpus`` from the profile);
with ``RAY_ADDRESS`` (or ``runtime.ray_address``) the same call connects to a cluster and ships
the project's packages with the job. Either way a stage runs through ``submit``: a Ray task that
calls ``factory.jobs.run_job``, so the embedded default and a cluster share one code path.

The job task itself reserves no CPU: it only drives the stage, and the stage's own parallel work
(Ray Data pipelines, Ray Train workers, grid runs) must be able to claim the cluster's CPUs.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from factory.config import Profile
from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV, apply_env
from factory.jobs import run_job

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def ray_temp_dir(home: Path) -> Path:
    """Session folder of the embedded Ray: short, because Ray's Unix socket paths under it must stay
    within 107 bytes (a deep home such as a pytest temp folder would break them), and per home."""
    return Path(tempfile.gettempdir()) / f"factory-ray-{hashlib.sha1(str(home).encode()).hexdigest()[:10]}"


def ensure_ray(profile: Profile) -> None:
    """Start (or connect to) Ray once per process."""
    import ray

    if ray.is_initialized():
        return
    apply_env()
    address = profile.ray_address
    if address:
        runtime_env = {
            "env_vars": dict(PROCESS_ENV),
            "py_modules": [str(PROJECT_ROOT / p) for p in ("factory", "kernels", "ray_jobs")],
        }
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=True)
    else:
        apply_env(EMBEDDED_RAY_ENV)
        ray.init(
            num_cpus=profile.runtime.num_cpus,
            include_dashboard=False,
            log_to_driver=True,
            runtime_env={"env_vars": {**PROCESS_ENV, **EMBEDDED_RAY_ENV, "PYTHONPATH": str(PROJECT_ROOT)}},
            _temp_dir=str(ray_temp_dir(profile.home)),
        )


def submit(profile: Profile, job: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``factory.jobs.run_job(job, request)`` as a Ray task and wait for its metadata."""
    import ray

    ensure_ray(profile)
    task = ray.remote(num_cpus=0, max_retries=0)(run_job)
    return ray.get(task.options(name=f"{job}:{request['asset']}").remote(job, request))
