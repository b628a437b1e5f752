"""The one Dagster resource: a factory runner bound to a profile (FACTORY_PROFILE, default demo)."""


import os
from collections.abc import Callable

import dagster as dg

from factory.config import PROFILE_ENV, Profile, load_profile
from factory.raycluster import JobLauncher
from factory.runner import Runner


def default_profile_name() -> str:
    return os.environ.get(PROFILE_ENV, "demo")


class FactoryResource(dg.ConfigurableResource):
    """Where and how the factory runs: the profile name (smoke, demo, cluster or a YAML path)."""

    profile: str

    def load(self) -> Profile:
        return load_profile(self.profile)

    def runner(self, log: Callable[[str], None], launcher: JobLauncher | None = None) -> Runner:
        return Runner(self.load(), log=log, launcher=launcher)
