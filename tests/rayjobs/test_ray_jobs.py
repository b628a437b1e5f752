"""Stages as Ray Jobs (factory/raycluster.py, assets/pipes.py): listed by the Jobs API, failures
carry the stage's error, Dagster's run termination stops the job."""

import dataclasses
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dagster as dg
import pytest

from assets.pipes import PipesJobLauncher
from factory.config import load_profile
from factory.raycluster import JobFailedError, SubmissionLauncher, TaskLauncher, ensure_ray, job_client, job_for
from factory.runner import Runner

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    old = {key: os.environ.get(key) for key in ("FACTORY_HOME", "PATH")}
    os.environ["FACTORY_HOME"] = str(home)
    # This Ray also serves as a cluster (the termination test), whose jobs run the nodes' `python`:
    # this interpreter's, as on the local cluster.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), old["PATH"] or ""])
    import ray

    if ray.is_initialized():  # an earlier test's ray.init() without a dashboard: jobs need one
        ray.shutdown()
    try:
        profile = load_profile("smoke")
        yield profile, ensure_ray(profile)
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value


def test_a_stage_runs_as_a_ray_job_listed_by_the_jobs_api(smoke):
    profile, address = smoke
    outcome = Runner(profile, log=print, launcher=SubmissionLauncher()).materialize("raw_crawl")
    meta = outcome.manifest.metadata
    jobs = {j.submission_id: j for j in job_client(address).list_jobs()}
    assert jobs[meta["ray_job_id"]].status == "SUCCEEDED"
    assert jobs[meta["ray_job_id"]].entrypoint.split()[2:4] == ["-m", "ray_jobs.curate"]
    assert meta["ray_node_id"] == jobs[meta["ray_job_id"]].driver_node_id
    assert (outcome.path / "crawl.json").exists()
    assert not list((profile.home / "jobs").iterdir())  # the job's request file goes when the job ends


def test_a_failing_stage_fails_with_the_stages_error(smoke):
    profile, address = smoke
    runner = Runner(profile, log=print, launcher=SubmissionLauncher())
    runner.specs["raw_crawl"] = dataclasses.replace(runner.specs["raw_crawl"], target="stage_fns:failing_stage",
                                                 extra={"fails": True})  # another key: not the built one
    runner.job_env = {"PYTHONPATH": str(HERE)}
    with pytest.raises(JobFailedError, match="stage exploded: the answer is 41") as err:
        runner.materialize("raw_crawl")
    job_id = str(err.value).split()[2]
    assert job_client(address).get_job_status(job_id) == "FAILED"
    assert not (profile.home / "jobs" / f"{job_id}.json").exists()


def test_the_embedded_default_launches_tasks_and_reuses_what_a_job_built(smoke):
    profile, _ = smoke
    runner = Runner(profile, log=print)
    assert isinstance(runner.launcher, TaskLauncher)
    job_built = runner.store.latest("raw_crawl")
    outcome = runner.materialize("raw_crawl")
    assert outcome.reused and outcome.manifest.digest == job_built.digest
    # A build as a task of the embedded Ray records where it ran, and asks no Jobs API about a job it is not.
    fewer = profile.with_section("raw_crawl", {**profile.section("raw_crawl"), "max_pages_per_source": 3})
    meta = Runner(fewer, log=print).materialize("raw_crawl").manifest.metadata
    assert meta["ray_worker_node_ids"] == [meta["ray_node_id"]]  # the stage's own task, on the one local node
    assert "ray_worker_node_ids_error" not in meta and "ray_job_node_id" not in meta


def _slow_asset(profile, seconds: float, failing: bool = False):
    @dg.asset(name="slow")
    def slow(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        out = profile.home / "slow-out"
        out.mkdir(parents=True, exist_ok=True)
        request = {"asset": "slow", "target": "stage_fns:" + ("failing_stage" if failing else "slow_stage"),
                   "config_class": "stage_fns:SlowConfig", "config": {"seconds": seconds}, "extra": {},
                   "inputs": {}, "out": str(out), "work_dir": "", "torch_threads": 1}
        job = job_for(profile, "curate", request, env={"PYTHONPATH": str(HERE)})
        (profile.home / "job_id").write_text(job.submission_id)
        PipesJobLauncher(context).launch(job, context.log.info)
        return dg.MaterializeResult()

    return slow


def test_a_failing_stage_fails_the_dagster_step_with_the_jobs_error(smoke):
    profile, _ = smoke
    result = dg.materialize([_slow_asset(profile, 0, failing=True)], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "stage exploded: the answer is 41" in str(failure.event_specific_data.error)


CANCEL_SCRIPT = textwrap.dedent("""
    import sys
    import dagster as dg
    sys.path.insert(0, {here!r})
    import test_ray_jobs
    from factory.config import load_profile
    dg.materialize([test_ray_jobs._slow_asset(load_profile("smoke"), 300)])
""")


def test_terminating_the_dagster_run_stops_the_ray_job(smoke, tmp_path, interrupt_and_await_stop):
    """The run executes in another process against this process's Ray (as a cluster: RAY_ADDRESS and
    the Jobs API address), so the job outlives that process and its status can be checked here."""
    profile, address = smoke
    import ray

    env = {**os.environ, "FACTORY_HOME": str(tmp_path), "RAY_ADDRESS": ray.get_runtime_context().gcs_address,
           "RAY_API_SERVER_ADDRESS": address,
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)])}
    proc = subprocess.Popen([sys.executable, "-c", CANCEL_SCRIPT.format(here=str(HERE))], env=env, cwd=ROOT,
                            start_new_session=True)
    client = job_client(address)
    try:
        deadline = time.monotonic() + 240
        job_id = None
        while time.monotonic() < deadline:
            if job_id is None and (tmp_path / "job_id").exists():
                job_id = (tmp_path / "job_id").read_text()
            if job_id and job_id in {j.submission_id for j in client.list_jobs()} \
                    and "sleeping" in client.get_job_logs(job_id):
                break
            assert proc.poll() is None, "the Dagster run ended before its job started"
            time.sleep(1)
        else:
            pytest.fail("the slow stage's job never started")
        interrupt_and_await_stop(proc, client, job_id)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
