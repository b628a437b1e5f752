"""The one Dagster resource: the profile the factory runs (FACTORY_PROFILE, default demo)."""


import os

import dagster as dg

from factory.config import PROFILE_ENV, Profile, load_profile


def default_profile_name() -> str:
    return os.environ.get(PROFILE_ENV, "demo")


class FactoryResource(dg.ConfigurableResource):
    """Where and how the factory runs: the profile name (smoke, demo, cluster or a YAML path)."""

    profile: str

    def load(self) -> Profile:
        return load_profile(self.profile)
