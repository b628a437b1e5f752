"""Where a stage's work runs: the Ray resources each part of a stage asks for and the device it trains
on (the profile's ``runtime.resources`` and ``runtime.accelerator``; docs/cluster.md, "Resources").

Placement is not part of an artifact's key (the same config on other hardware builds the same
artifact), so it lives in the profile's runtime section, never in a stage's config.

Two parts of a stage ask Ray for resources:

- its **driver**, the process that runs the stage function: the Ray Job's entrypoint
  (``entrypoint_num_cpus/gpus/resources``) on a cluster, the Ray task of the embedded default's task
  launcher. A stage that trains in one process trains here, so a GPU stage's driver asks for a GPU;
- each of its **workers**: a Ray Train worker of a distributed run (``resources_per_worker``) or one
  run of a grid (IsoFLOP points, mix experiments: ``ray.remote`` options).

The job body installs the stage's ``Placement`` (accelerator and worker request) for the stage's
duration (``use``); the trainer and the grid map read it (``current``) and carry it into the Ray
processes they start, so a Ray Train worker or a grid run trains on the device its stage was given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field

from factory.core.stage import StageConfig

Accelerator = Literal["cpu", "cuda"]


class Resources(StageConfig):
    """What one process asks Ray for: CPUs, GPUs and custom resources (a node's ``node_worker``, an
    accelerator type such as ``accelerator_type:H100``)."""

    num_cpus: float = Field(ge=0, description="CPUs reserved for the process.")
    num_gpus: float = Field(0, ge=0, description="GPUs reserved for the process (Ray sets CUDA_VISIBLE_DEVICES).")
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom Ray resources, {name: amount}: the process runs only on nodes that have them.")

    def ray_options(self) -> dict[str, Any]:
        """``ray.remote(...)``/``.options(...)`` keyword arguments."""
        return {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus, "resources": dict(self.resources)}

    def bundle(self) -> dict[str, float]:
        """The request as one resource dict (Ray Train's ``resources_per_worker``); zero amounts left out."""
        amounts = {"CPU": self.num_cpus, "GPU": self.num_gpus, **self.resources}
        return {name: amount for name, amount in amounts.items() if amount}


class DriverResources(Resources):
    num_cpus: float = Field(
        0, ge=0, description="CPUs reserved for the stage's driver; 0 by default, so the stage's own parallel work "
        "(Ray Data, Ray Train workers, grid runs) can claim the cluster's CPUs.")


class WorkerResources(Resources):
    num_cpus: float = Field(1, ge=0, description="CPUs reserved for each worker.")


class StageResources(StageConfig):
    """What a stage's driver and each of its workers ask Ray for (module doc)."""

    driver: DriverResources = Field(
        default_factory=DriverResources,
        description="The stage's driver: the Ray Job's entrypoint, or the task launcher's Ray task.")
    worker: WorkerResources = Field(
        default_factory=WorkerResources, description="Each Ray Train worker of a distributed run and each grid run.")


@dataclass(frozen=True)
class Placement:
    """What the code running a stage needs to know about where its work goes (picklable: it travels
    to Ray Train workers and grid runs)."""

    accelerator: Accelerator = "cpu"
    worker: WorkerResources = field(default_factory=WorkerResources)

    @property
    def use_gpu(self) -> bool:
        return self.accelerator == "cuda"

    @property
    def backend(self) -> str:
        """The torch.distributed backend of a process group of this placement's workers."""
        return "nccl" if self.use_gpu else "gloo"

    def device(self):
        """The torch device this process trains on; raises when the stage runs on CUDA but the
        process was given no GPU (a driver without ``num_gpus`` sees none on a cluster)."""
        import torch

        if not self.use_gpu:
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise RuntimeError("runtime.accelerator is cuda but this process sees no GPU: a stage that trains in its "
                               "driver needs runtime.resources.<stage>.driver.num_gpus (its workers get "
                               "worker.num_gpus)")
        return torch.device("cuda", torch.cuda.current_device())


_current = Placement()


def current() -> Placement:
    """The placement of the stage running in this process (CPU, one CPU per worker outside a stage)."""
    return _current


@contextlib.contextmanager
def use(placement: Placement) -> Iterator[Placement]:
    """Make ``placement`` this process's for the block (a stage's run, a worker's loop)."""
    global _current
    before, _current = _current, placement
    try:
        yield placement
    finally:
        _current = before
