"""Profiles: one YAML per way of running the factory (docs/architecture.md, "Profiles").

A profile has a ``runtime`` section (where artifacts, MLflow and Ray live) and one section per
asset, named by the asset key, holding that stage's config. Stage configs are typed pydantic
models declared beside their stage (see ``factory.stages``); unknown keys and sections fail
loudly. Every field has a default where one makes sense (the ``demo`` profile's small-scale
values), so a profile states only what differs from the defaults and may leave a stage's section
out. A nested section in a profile (``train: {...}``) replaces the field's default as a whole: the
keys it leaves out take the nested config class's defaults. Profiles differ only in values, never
in code paths.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from factory.core.resources import Accelerator, StageResources
from factory.core.stage import StageConfig

PROFILES_DIR = Path(__file__).parent / "profiles"
PROJECT_ROOT = PROFILES_DIR.parent.parent  # the checkout; a profile names paths beside it with ``{root}``
PROFILE_ENV = "FACTORY_PROFILE"
HOME_ENV = "FACTORY_HOME"


class RuntimeConfig(StageConfig):
    """Where the factory keeps its state and which compute it uses."""

    home: str = Field(".factory", description="State folder; relative paths resolve against the working directory.")
    artifact_root: str = Field("artifacts", description="Artifact store root: relative to home, an absolute path, "
                               "or an object-store URL (s3://bucket/prefix; S3 settings from the AWS_* environment).")
    mlflow_tracking_uri: str = Field("", description="MLflow tracking URI; empty means sqlite:///<home>/mlflow.db.")
    ray_address: str = Field(
        "", description="Ray cluster address; empty means a local Ray started by the factory (RAY_ADDRESS overrides).")
    ray_jobs_address: str = Field(
        "", description="Job Submission API (dashboard) of the ray_address cluster, http://head:8265 "
        "(RAY_API_SERVER_ADDRESS overrides); the embedded Ray's is found by the factory.")
    launcher: Literal["task", "job"] = Field(
        "task", description="How a stage runs: 'job' submits a Ray Job (Job Submission API; Dagster Pipes "
        "under Dagster): required on a cluster; 'task' runs the job's body as a Ray task of the embedded Ray "
        "(no new interpreter per stage).")
    num_cpus: int = Field(2, description="CPUs of the embedded local Ray.")
    torch_threads: int = Field(2, description="torch intra-op threads inside a stage.")
    accelerator: Accelerator = Field(
        "cpu", description="Device every training run trains on: cuda gives each run a GPU (nccl between Ray Train "
        "workers), cpu none (gloo). Where a run trains must have one: see resources.")
    resources: dict[str, StageResources] = Field(
        default_factory=dict, description="What each stage's driver and workers ask Ray for, by stage (its profile "
        "section name: the asset, or sft/dpo for every round); 'default' is every stage's, and a stage's entry "
        "replaces the default's driver and worker parts it names. Not part of any artifact key.")
    job_env: Literal["working_dir", "pip", "image"] = Field(
        "working_dir", description="What a stage's Ray Job on a cluster runs in: 'working_dir' uploads the checkout "
        "and runs the nodes' own python (an environment with the pinned requirements); 'pip' also has Ray install "
        "pyproject.toml's pinned requirements into a virtualenv per node (cached); 'image' runs the job in the "
        "container job_image (project and requirements installed in it).")
    job_image: str = Field("", description="Container image (runtime_env image_uri) of job_env: image.")

    @model_validator(mode="after")
    def _check(self) -> RuntimeConfig:
        if (self.job_env == "image") != bool(self.job_image):
            raise ValueError("runtime.job_image is the image of job_env: image (set both or neither)")
        for name in ["default", *self.resources]:
            placed = self.stage_resources(name)
            if self.accelerator == "cuda" and placed.worker.num_gpus <= 0:
                raise ValueError(f"runtime.resources.{name}: with accelerator cuda every worker trains on a GPU "
                                 "(worker.num_gpus > 0)")
            if self.accelerator == "cpu" and (placed.worker.num_gpus or placed.driver.num_gpus):
                raise ValueError(f"runtime.resources.{name}: GPUs asked for while accelerator is cpu")
        return self

    def stage_resources(self, name: str) -> StageResources:
        """The resources of stage ``name``: the default's parts, each replaced by the stage's entry when it
        names that part."""
        default = self.resources.get("default", StageResources())
        own = self.resources.get(name)
        if own is None:
            return default
        return StageResources(**{part: getattr(own if part in own.model_fields_set else default, part)
                                 for part in StageResources.model_fields})


class Profile:
    """A loaded profile: the runtime plus raw per-stage sections (validated by ``factory.stages``)."""

    def __init__(self, name: str, data: dict[str, Any]):
        self.name = name
        data = dict(data)
        self.runtime = RuntimeConfig(**(data.pop("runtime", None) or {}))
        self.sections: dict[str, dict[str, Any]] = {k: dict(v or {}) for k, v in data.items()}

    @property
    def home(self) -> Path:
        home = os.environ.get(HOME_ENV) or self.runtime.home
        return Path(home).expanduser().resolve()

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.home / p

    @property
    def artifact_root(self) -> str:
        """The store root as ``ArtifactStore`` takes it: an absolute local path, or a URL kept as written."""
        root = self.runtime.artifact_root
        return root if "://" in root and not root.startswith("file://") else str(self.resolve(root.removeprefix("file://")))

    @property
    def mlflow_tracking_uri(self) -> str:
        return (os.environ.get("MLFLOW_TRACKING_URI") or self.runtime.mlflow_tracking_uri
                or f"sqlite:///{self.home / 'mlflow.db'}")

    @property
    def ray_address(self) -> str:
        return os.environ.get("RAY_ADDRESS") or self.runtime.ray_address

    def section(self, asset: str) -> dict[str, Any]:
        """A stage's raw config section, with ``{home}`` in string values replaced by the absolute home
        and ``{root}`` by the checkout's; empty (all defaults) when the profile has none.

        Stages run in Ray workers whose working directory is not the caller's, so every path a
        stage receives must be absolute; ``{home}`` is how a profile names paths inside home,
        ``{root}`` paths in or beside the checkout (``{root}/../shared/data/safety``).
        """
        places = {"{home}": str(self.home), "{root}": str(PROJECT_ROOT)}
        return _substitute_places(self.sections.get(asset, {}), places)

    def with_section(self, name: str, values: dict[str, Any]) -> Profile:
        """This profile with section ``name`` replaced as a whole by ``values`` (one run's own stage
        config: Dagster's run config, see ``factory.stages.with_stage_config``); this one is unchanged."""
        edited = copy.copy(self)
        edited.sections = {**self.sections, name: dict(values)}
        return edited


def _substitute_places(value: Any, places: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, path in places.items():
            value = value.replace(name, path)
        return value
    if isinstance(value, dict):
        return {k: _substitute_places(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute_places(v, places) for v in value]
    return value


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name: str | None = None) -> Profile:
    """Load a profile by name (default: $FACTORY_PROFILE or ``demo``) or from a YAML path."""
    name = name or os.environ.get(PROFILE_ENV, "demo")
    path = Path(name)
    if path.suffix not in (".yaml", ".yml"):
        path = PROFILES_DIR / f"{name}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"unknown profile {name!r}; available: {', '.join(available_profiles())}")
    data = yaml.safe_load(path.read_text()) or {}
    return Profile(path.stem, data)
