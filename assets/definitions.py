"""The Dagster ``Definitions`` of the factory: assets, the observed WARC files, checks, the automation
sensor, resource.

The profile comes from FACTORY_PROFILE (default ``demo``). Assets run in-process in the run
worker (their heavy work goes out to Ray), which saves Dagster's per-step process start-up.
"""

from __future__ import annotations

import dagster as dg

from assets.automation import automation_sensor, warc_files
from assets.checks import build_checks
from assets.gates import build_gates
from assets.graph import build_assets
from assets.resources import FactoryResource, default_profile_name
from factory.config import load_profile
from factory.stages import check_profile

_profile = load_profile(default_profile_name())
check_profile(_profile)  # a misspelt section or key fails the code location's load, before any run

defs = dg.Definitions(
    assets=[warc_files, *build_assets(_profile)],
    asset_checks=build_checks(_profile) + build_gates(_profile),
    sensors=[automation_sensor],  # evaluates the assets' automation conditions (assets/automation.py)
    resources={"factory": FactoryResource(profile=default_profile_name())},  # a name or a YAML path, as given
    executor=dg.in_process_executor,
)
