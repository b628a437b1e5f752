"""Shared fixture of the data-stage tests: the embedded Ray that the ``ray`` executor maps on."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def embedded_ray(tmp_path_factory):
    """The factory's embedded Ray (as ``factory.raycluster`` starts it: its own temp dir and a free
    dashboard-agent port, so other Rays on the machine do not keep it from starting)."""
    import ray

    from factory.config import load_profile
    from factory.raycluster import ensure_ray

    old = os.environ.get("FACTORY_HOME")
    os.environ["FACTORY_HOME"] = str(tmp_path_factory.mktemp("ray-home"))
    try:
        if not ray.is_initialized():
            ensure_ray(load_profile("smoke"))
        yield
    finally:
        if old is None:
            os.environ.pop("FACTORY_HOME")
        else:
            os.environ["FACTORY_HOME"] = old
