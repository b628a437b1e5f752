"""The command line every job module shares: read a request (a JSON file or inline JSON), run it
(``factory.jobs.run_stage_job``), print the result.

Under Dagster Pipes (``DAGSTER_PIPES_CONTEXT`` in the environment, set by the Pipes launcher of
``assets/pipes.py``) the stage's progress lines go to the Dagster run as log events while the job
runs, its result goes back as a Pipes custom message, and an exception is reported to the run;
otherwise the lines are plain stdout and the result is the last stdout line, behind
``FACTORY_JOB_RESULT`` (what ``factory.raycluster.SubmissionLauncher`` reads). Under Pipes the
job's stdout is also the step's, so the result (manifests, metadata: kilobytes) stays out of it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from factory.jobs import run_stage_job
from factory.raycluster import RESULT_MARKER

PIPES_CONTEXT_ENV = "DAGSTER_PIPES_CONTEXT"  # dagster_pipes.DAGSTER_PIPES_CONTEXT_ENV_VAR


def read_request(text: str) -> dict:
    return json.loads(text if text.lstrip().startswith("{") else Path(text).read_text())


def cli(kind: str) -> None:
    parser = argparse.ArgumentParser(description=f"Run one factory stage as a '{kind}' job from a JSON request.")
    parser.add_argument("request", help="a JSON request file, or the request itself as inline JSON")
    args = parser.parse_args()
    request = read_request(args.request)
    if os.environ.get(PIPES_CONTEXT_ENV):  # launched by Dagster Pipes (dagster-pipes must be installed)
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            def log(line: str) -> None:
                print(line, flush=True)
                pipes.log.info(line)

            pipes.report_custom_message({"factory_result": run_stage_job(kind, request, log=log)})
    else:
        result = run_stage_job(kind, request, log=lambda line: print(line, flush=True))
        print(RESULT_MARKER + json.dumps(result, default=str), flush=True)
