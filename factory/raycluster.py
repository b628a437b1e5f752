"""Connecting to Ray and running a stage as a Ray Job (docs/architecture.md, "How one asset is materialized").

Every stage runs as a job of Ray's Job Submission API: ``python -m ray_jobs.<kind> <request>`` on
the cluster, which calls ``factory.jobs.run_stage_job``. The job shows in the dashboard's job list,
survives a dropped client, streams its logs while it runs and can be stopped by id.

- **Embedded default** (no ``RAY_ADDRESS``): the factory starts a local Ray in the calling process
  with its dashboard (the Jobs API) on 127.0.0.1 and ``RAY_AUTH_MODE=disabled``; jobs run this
  checkout's code (``PYTHONPATH`` = the project) with this interpreter, so a job costs only a new
  Python process and its imports (no package upload).
- **A cluster** (``RAY_ADDRESS`` / ``runtime.ray_address``): nothing is started or connected here;
  jobs go to the Jobs API (``RAY_API_SERVER_ADDRESS``, ``runtime.ray_jobs_address``, or an
  ``http(s)://`` ray address) and run ``python`` of the nodes, in the environment ``runtime.job_env``
  names (``cluster_runtime_env``: the checkout as ``working_dir``, plus pyproject.toml's pinned
  requirements with ``pip``, or a container ``image``), with the user's Ray auth settings
  (``RAY_AUTH_*``) and object-store settings (``AWS_*``) passed through.

How a job is launched is a ``JobLauncher``: ``SubmissionLauncher`` (here, used by the CLI, the
tests and library calls) submits with ``JobSubmissionClient``, prints the job's log lines as they
come and stops the job when interrupted; the Dagster layer passes one built on Dagster Pipes
(``assets/pipes.py``). The job driver asks for what ``runtime.resources`` gives the stage's driver
(``entrypoint_num_cpus/gpus/resources``; by default no CPU, so the stage's own parallel work can
claim the cluster's CPUs); the task launcher gives its task the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import socket
import sys
import tempfile
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from factory.config import Profile
from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV, apply_env
from factory.core.resources import DriverResources

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# The job prints its result (manifest, metadata, node ids) on one stdout line behind this marker.
RESULT_MARKER = "FACTORY_JOB_RESULT "
# What a job on a cluster gets from the submitting process's environment when set there.
PASS_THROUGH_PREFIXES = ("RAY_AUTH_", "AWS_", "FSSPEC_S3_", "MLFLOW_S3_", "MLFLOW_TRACKING_")
# The project as a job's working_dir on a cluster: code only (Ray also skips .gitignore'd paths).
WORKING_DIR_EXCLUDES = [".git", ".factory", ".venv", "tests", "docs", ".ci", "**/__pycache__"]
# The extra whose pins a job on a cluster also installs: s3fs and boto3 for an s3:// artifact store.
JOB_EXTRA = "cluster"

_embedded_jobs_address: str | None = None


def ray_temp_dir(home: Path) -> Path:
    """Session folder of the embedded Ray: short, because Ray's Unix socket paths under it must stay
    within 107 bytes (a deep home such as a pytest temp folder would break them), and per home."""
    return Path(tempfile.gettempdir()) / f"factory-ray-{hashlib.sha1(str(home).encode()).hexdigest()[:10]}"


def is_embedded(profile: Profile) -> bool:
    return not profile.ray_address


def ensure_ray(profile: Profile) -> str:
    """The Jobs API address of the profile's Ray; the embedded Ray is started once per process ("" when
    this process's Ray was started elsewhere without a dashboard: only the task launcher can use it)."""
    global _embedded_jobs_address
    apply_env()
    if not is_embedded(profile):
        return jobs_address(profile)
    import ray

    if ray.is_initialized() and _embedded_jobs_address:
        return _embedded_jobs_address
    apply_env(EMBEDDED_RAY_ENV)
    temp_dir = ray_temp_dir(profile.home)
    if not ray.is_initialized():
        with _free_agent_port():
            ray.init(
                address="local",  # never the cluster named by a stale ray_current_cluster in the temp dir
                num_cpus=profile.runtime.num_cpus,
                include_dashboard=True,
                dashboard_host="127.0.0.1",
                log_to_driver=True,
                runtime_env={"env_vars": {**PROCESS_ENV, **EMBEDDED_RAY_ENV, "PYTHONPATH": str(PROJECT_ROOT)}},
                _temp_dir=str(temp_dir),
            )
    node = ray._private.worker.global_worker.node
    url = node.address_info.get("webui_url")
    if not url:  # someone else's ray.init() without a dashboard: tasks work, Ray Jobs cannot
        return ""
    # A job driver finds its cluster through <temp dir>/ray_current_cluster ("auto"); ray.init() does
    # not write it (only `ray start` does), and without it Ray picks *any* GCS running on the machine.
    from ray._private.utils import write_ray_address

    write_ray_address(node.gcs_address, node._ray_params.temp_dir)
    _embedded_jobs_address = url if "://" in url else f"http://{url}"
    return _embedded_jobs_address


@contextlib.contextmanager
def _free_agent_port():
    """Give the embedded Ray's dashboard agent a free port. Ray binds it to a fixed 52365 that
    ``ray.init`` cannot change, so a second Ray on the machine (another factory, a test, a local
    cluster) leaves it without an agent, and a job submission fails with "No available agent"."""
    from ray._private import parameter

    original = parameter.RayParams.__init__

    def init(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.dashboard_agent_listen_port == ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT:
            self.dashboard_agent_listen_port = _free_port()

    from ray._private import ray_constants

    parameter.RayParams.__init__ = init
    try:
        yield
    finally:
        parameter.RayParams.__init__ = original


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def submit(client, params: dict[str, Any], timeout: float = 120) -> str:
    """``client.submit_job(**params)``, retried while the cluster has no job agent yet: the head's
    dashboard agent registers some seconds after a fresh Ray starts ("No available agent")."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return client.submit_job(**params)
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def jobs_address(profile: Profile) -> str:
    """The Jobs API (dashboard) of a user's cluster."""
    address = os.environ.get("RAY_API_SERVER_ADDRESS") or profile.runtime.ray_jobs_address
    if not address and profile.ray_address.startswith(("http://", "https://")):
        address = profile.ray_address
    if not address:
        raise RuntimeError(f"Ray address {profile.ray_address!r} given but not its Job Submission API: set "
                           "RAY_API_SERVER_ADDRESS or runtime.ray_jobs_address (http://head:8265)")
    return address


@dataclass
class RayJob:
    """One stage job as submitted to the Jobs API (``JobSubmissionClient.submit_job``'s arguments)."""

    address: str
    entrypoint: str
    submission_id: str
    runtime_env: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    driver: DriverResources = field(default_factory=DriverResources)  # the entrypoint's (or task's) resources
    kind: str = "curate"  # the job kind and request the entrypoint runs (what a TaskLauncher runs directly)
    request: dict[str, Any] = field(default_factory=dict)
    request_file: Path | None = None  # where an embedded job's entrypoint reads its request

    def discard_request_file(self) -> None:
        """Remove the request file once the job has ended (its entrypoint reads it only at start)."""
        if self.request_file is not None:
            self.request_file.unlink(missing_ok=True)

    def submit_params(self) -> dict[str, Any]:
        return {"entrypoint": self.entrypoint, "submission_id": self.submission_id,
                "runtime_env": json.loads(json.dumps(self.runtime_env)), "metadata": dict(self.metadata),
                "entrypoint_num_cpus": self.driver.num_cpus, "entrypoint_num_gpus": self.driver.num_gpus,
                "entrypoint_resources": dict(self.driver.resources)}


def job_for(profile: Profile, kind: str, request: dict[str, Any], submission_id: str | None = None,
            env: dict[str, str] | None = None) -> RayJob:
    """The Ray Job that runs ``request`` (``factory.jobs.run_stage_job``) as a ``kind`` job."""
    address = ensure_ray(profile)
    submission_id = submission_id or request.get("ray_job_id") or new_submission_id(request["asset"])
    request = {**request, "ray_job_id": submission_id}
    payload = json.dumps(request, separators=(",", ":"), default=str)
    env_vars = dict(PROCESS_ENV)
    request_file = None
    if is_embedded(profile):
        # The job runs on this machine: the request goes as a file (input manifests can be long).
        request_file = profile.home / "jobs" / f"{submission_id}.json"
        request_file.parent.mkdir(parents=True, exist_ok=True)
        request_file.write_text(payload)
        payload = str(request_file)
        # This interpreter and checkout; -P keeps the job's working directory off sys.path (a
        # folder holding Ray's temp `ray/` would shadow the package).
        entrypoint = f"{shlex.quote(sys.executable)} -P -m ray_jobs.{kind} {shlex.quote(payload)}"
        env_vars.update(EMBEDDED_RAY_ENV)
        env_vars["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), (env or {}).get("PYTHONPATH")]))
        runtime_env: dict[str, Any] = {"env_vars": env_vars}
    else:
        # The nodes' python, in the environment of runtime.job_env (pip: Ray's virtualenv is first on PATH).
        entrypoint = f"python -m ray_jobs.{kind} {shlex.quote(payload)}"
        env_vars.update({k: v for k, v in os.environ.items() if k.startswith(PASS_THROUGH_PREFIXES)})
        runtime_env = cluster_runtime_env(profile, env_vars)
    for key, value in (env or {}).items():
        if key != "PYTHONPATH" or not is_embedded(profile):
            env_vars[key] = value
    metadata = {"factory.asset": request["asset"], "factory.kind": kind, "factory.profile": profile.name}
    driver = DriverResources(**request.get("resources", {}).get("driver", {}))
    return RayJob(address, entrypoint, submission_id, runtime_env, metadata, driver=driver, kind=kind, request=request,
                  request_file=request_file)


def cluster_runtime_env(profile: Profile, env_vars: dict[str, str]) -> dict[str, Any]:
    """The ``runtime_env`` of a stage job on a cluster, by ``runtime.job_env`` (docs/cluster.md):
    ``working_dir``: the checkout (code only, ~1 MB), run by the nodes' python, which must have the
    pinned requirements; ``pip``: the same plus ``pinned_requirements()``, which Ray installs into a
    virtualenv on each node (once per node and requirement list: the first job waits for it);
    ``image``: the container ``runtime.job_image`` with the project installed (Ray allows no
    working_dir beside an image)."""
    if profile.runtime.job_env == "image":
        return {"image_uri": profile.runtime.job_image, "env_vars": env_vars}
    runtime_env = {"working_dir": str(PROJECT_ROOT), "excludes": list(WORKING_DIR_EXCLUDES), "env_vars": env_vars}
    if profile.runtime.job_env == "pip":
        runtime_env["pip"] = {"packages": pinned_requirements(), "pip_check": False}
    return runtime_env


def pinned_requirements(pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> list[str]:
    """What a stage job needs installed, as pyproject.toml pins it: the dependencies and the ``cluster`` extra."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"][JOB_EXTRA]]


def new_submission_id(asset: str) -> str:
    return f"factory-{asset.replace('_', '-')}-{uuid.uuid4().hex[:8]}"


class JobFailedError(RuntimeError):
    """A stage job ended FAILED or STOPPED; the message carries the job's own error."""


class JobLauncher(Protocol):
    """Runs one Ray Job to its end: returns the job's result (``parse_result``), raises on failure."""

    def launch(self, job: RayJob, log: Callable[[str], None]) -> dict[str, Any]: ...


def parse_result(logs: str) -> dict[str, Any]:
    """The job's result from its log: the last line behind ``RESULT_MARKER``."""
    for line in reversed(logs.splitlines()):
        at = line.find(RESULT_MARKER)
        if at >= 0:
            return json.loads(line[at + len(RESULT_MARKER):])
    raise JobFailedError("the job ended without reporting its result (no FACTORY_JOB_RESULT line in its log)")


def job_client(address: str):
    """A ``JobSubmissionClient`` whose ``submit_job`` waits for a fresh cluster's job agent."""
    from ray.job_submission import JobSubmissionClient

    class Client(JobSubmissionClient):
        def submit_job(self, **params: Any) -> str:
            return submit(super(), params)

    return Client(address)


class TaskLauncher:
    """The embedded default's launcher: the job's body (``factory.jobs.run_stage_job``) runs as a Ray
    task of the local Ray on a reused worker process, so a stage pays no new interpreter and no
    re-import of torch (a Ray Job costs ~12 s a stage here: 24 stages would add ~5 min to
    ``make run``). Same request, same staging and commit as a job; what it lacks is a job's own
    entry in the dashboard's job list and log stream. Only for the Ray this process started."""

    def launch(self, job: RayJob, log: Callable[[str], None]) -> dict[str, Any]:
        import ray

        from factory.jobs import run_stage_job

        task = ray.remote(max_retries=0)(run_stage_job)
        ref = task.options(name=job.submission_id, **job.driver.ray_options()).remote(job.kind, job.request)
        log(f"Ray task {job.submission_id} started on the embedded Ray")
        try:
            return ray.get(ref)
        except BaseException:
            ray.cancel(ref, force=True)
            raise


def launcher_for(profile: Profile) -> JobLauncher:
    """The profile's launcher outside Dagster: ``runtime.launcher`` (task: embedded Ray only)."""
    if profile.runtime.launcher == "job":
        return SubmissionLauncher()
    if not is_embedded(profile):
        raise ValueError(f"profile {profile.name!r}: runtime.launcher 'task' needs the embedded Ray; a cluster "
                         f"({profile.ray_address}) runs stages as Ray Jobs (set runtime.launcher: job)")
    return TaskLauncher()


class SubmissionLauncher:
    """The library's launcher: Job Submission API directly; log lines go to ``log`` as they come, an
    interrupt (Ctrl-C) stops the job, a failed job raises ``JobFailedError`` with its message."""

    def __init__(self, poll_interval: float = 0.2):
        self.poll_interval = poll_interval

    def launch(self, job: RayJob, log: Callable[[str], None]) -> dict[str, Any]:
        from ray.job_submission import JobStatus

        if not job.address:
            raise RuntimeError("this process's Ray was started without its dashboard, so it has no Jobs API: "
                               "let the factory start Ray (ray.init(include_dashboard=True)) or use the task launcher")
        client = job_client(job.address)
        job_id = client.submit_job(**job.submit_params())
        log(f"Ray job {job_id} submitted to {job.address}")
        done = threading.Event()
        tail = threading.Thread(target=self._tail, args=(client, job_id, log, done), daemon=True)
        tail.start()
        try:
            while not (status := client.get_job_status(job_id)).is_terminal():
                time.sleep(self.poll_interval)
        except BaseException:
            log(f"interrupted: stopping Ray job {job_id}")
            client.stop_job(job_id)
            raise
        finally:
            done.set()
            tail.join(timeout=5)
        if status != JobStatus.SUCCEEDED:
            info = client.get_job_info(job_id)
            raise JobFailedError(f"Ray job {job_id} {status.value}: {info.message}")
        return parse_result(client.get_job_logs(job_id))

    @staticmethod
    def _tail(client, job_id: str, log: Callable[[str], None], done: threading.Event) -> None:
        import asyncio

        async def follow() -> None:
            async for chunk in client.tail_job_logs(job_id):
                for line in chunk.splitlines():
                    if line and not line.startswith(RESULT_MARKER):
                        log(line)
                if done.is_set():
                    return

        try:
            asyncio.run(follow())
        except Exception as err:  # the log stream is a convenience; the job's status decides
            log(f"(log tail of {job_id} ended: {err})")
