"""The Dagster side of a stage's Ray Job: dagster-ray's ``PipesRayJobClient`` as the runner's launcher.

Why dagster-ray's client rather than Dagster Pipes with a reader of our own: it already is the Job
Submission API plus Pipes (submit with the Pipes bootstrap env, tail the job's log and turn Pipes
lines into Dagster events, poll the status, stop the job when the run is interrupted with
``forward_termination``, and fail with the job's own message), which is exactly the contract here.
What this module adds: the factory's job (``factory.raycluster.RayJob``) as its submit params, a
client whose submissions wait for a fresh head's job agent, a fast poll, a log reader that is done
at the job's Pipes "closed" message, and the job's result taken from its Pipes custom message
(``ray_jobs/entry.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import cached_property
from typing import Any

import dagster as dg
from dagster._core.pipes.utils import extract_message_or_forward_to_stdout
from dagster_ray.core.pipes import PipesRayJobClient, PipesRayJobMessageReader

from factory.raycluster import JobFailedError, RayJob, job_client


class _Client(PipesRayJobClient):
    @cached_property
    def client(self):  # the factory's JobSubmissionClient: retries "No available agent"
        return job_client(self._address)


class _Reader(PipesRayJobMessageReader):
    """dagster-ray's job log reader, done once the job's Pipes session has closed. Its own reader
    follows the log until the Jobs API ends the stream, which the dashboard does only after its next
    1 s poll finds the job ended: ~2 s of every stage's step went to that wait. Nothing the stage
    reports comes after the closed message (``ray_jobs/entry.py``); a job that dies without one ends
    its stream, and so this reader, when it ends."""

    def handle_job_logs(self, handler: dg.PipesMessageHandler) -> None:
        try:
            while (self._job_id is None or self._client is None) and not self.session_closed.is_set():
                time.sleep(0.05)
            self.thread_ready.set()
            if self._job_id is not None and self._client is not None:
                asyncio.run(self._follow(handler))
        finally:
            self.completed.set()

    async def _follow(self, handler: dg.PipesMessageHandler) -> None:
        stream = self.client.tail_job_logs(self.job_id)
        try:
            async for chunk in stream:
                for line in chunk.split("\n"):
                    if line:
                        extract_message_or_forward_to_stdout(handler, line)
                if handler.received_closed_message:
                    return
        finally:
            await stream.aclose()


class PipesJobLauncher:
    """``factory.raycluster.JobLauncher`` for one asset execution: the job's Pipes log lines become
    the run's log events as they happen, its stdout goes to the step's captured stdout, terminating
    the run stops the Ray job, and a failed job fails the step with the job's error."""

    def __init__(self, context: dg.AssetExecutionContext, poll_interval: float = 0.25):
        self.context = context
        self.poll_interval = poll_interval

    def launch(self, job: RayJob, log: Callable[[str], None]) -> dict[str, Any]:
        client = _Client(address=job.address, forward_termination=True, poll_interval=self.poll_interval,
                         message_reader=_Reader())
        try:
            invocation = client.run(context=self.context, submit_job_params=job.submit_params())
        except RuntimeError as err:
            if "[pipes] Ray job" in str(err):
                raise JobFailedError(str(err).replace("[pipes] ", "")) from None
            raise
        for message in invocation.get_custom_messages():
            if isinstance(message, dict) and "factory_result" in message:
                return message["factory_result"]
        raise JobFailedError(f"Ray job {job.submission_id} ended without reporting its result through Dagster Pipes")
