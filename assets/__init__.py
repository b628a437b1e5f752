"""Dagster layer: the recipe's assets, their checks, their automation conditions and sensor.

Everything here only builds configs, calls ``factory.runner`` and reports metadata; the ML lives
in ``factory/`` and runs as Ray jobs.
"""

from factory.core.environment import apply_env

apply_env()  # before dagster and great_expectations are imported by the modules below
