"""Shared fixture of the data-stage tests: the embedded Ray that the ``ray`` executor maps on."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def embedded_ray(tmp_path_factory):
    """A local Ray for the ``ray`` executor, started as ``factory.raycluster`` starts the embedded
    one (its own short temp dir, a free dashboard-agent port: other Rays on the machine hold the
    fixed one) but without a dashboard, which Ray Data does not need."""
    import ray

    from factory.core.environment import EMBEDDED_RAY_ENV, apply_env
    from factory.raycluster import _free_agent_port, ray_temp_dir

    if not ray.is_initialized():
        apply_env(EMBEDDED_RAY_ENV)
        with _free_agent_port():
            ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                     _temp_dir=str(ray_temp_dir(tmp_path_factory.mktemp("ray-home"))))
    yield
