"""Runner keys: configs, external inbox files and staleness, without running any stage."""

from factory.config import load_profile
from factory.runner import Runner
from factory.store import stage_key


def test_new_inbox_warc_changes_the_raw_crawl_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    runner = Runner(load_profile("smoke"), log=lambda _: None)
    spec = runner.specs["raw_crawl"]
    before = runner.key_config(spec)
    assert before["config"]["inbox"] == str(tmp_path / "inbox")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "new.warc.gz").write_bytes(b"\x1f\x8b")
    after = runner.key_config(spec)
    assert before["external"] != after["external"]
    version = spec.code_version
    assert stage_key("raw_crawl", before, {}, code_version=version) != stage_key("raw_crawl", after, {},
                                                                                 code_version=version)


def test_nothing_built_means_everything_is_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    runner = Runner(load_profile("smoke"), log=lambda _: None)
    assert [spec.asset for spec in runner.specs.values() if runner.is_stale(spec, stale_upstream=False)] == list(
        runner.specs)


def _fake_job_launcher(monkeypatch, calls):
    """Stage jobs without Ray: ``launch`` builds the request's artifact in this process through the
    store, as ``run_stage_job`` would, with a slow stage (so materializations overlap)."""
    import json
    import time

    import factory.runner as runner_module
    from factory.raycluster import RayJob
    from factory.store import ArtifactStore

    monkeypatch.setattr(runner_module, "job_for", lambda profile, kind, request, submission_id=None, env=None:
                        RayJob("", "", submission_id or "job", kind=kind, request=request))

    class InProcess:
        def launch(self, job, log):
            req = job.request

            def produce(out, work):
                calls.append(req["mlflow"]["run_id"])
                time.sleep(1.0)
                (out / "data.txt").write_text("crawl")
                return {"mlflow_run_id": req["mlflow"]["run_id"]}

            store = ArtifactStore(req["store"]["root"])
            manifest, reused = store.build(req["asset"], req["key_config"], {}, produce,
                                           code_version=req["code_version"])
            return {"manifest": json.loads(manifest.to_json()), "reused": reused}

    return InProcess()


def test_concurrent_materializations_build_once_and_reuse_opens_no_mlflow_run(tmp_path, monkeypatch):
    import threading

    import mlflow

    from assets.metadata import dagster_metadata

    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    calls = []
    launcher = _fake_job_launcher(monkeypatch, calls)
    runners = [Runner(load_profile("smoke"), log=lambda _: None, launcher=launcher) for _ in range(2)]
    client = mlflow.MlflowClient(runners[0].tracker.tracking_uri)
    experiment = runners[0].tracker.experiment_id
    outcomes = []
    threads = [threading.Thread(target=lambda r=r: outcomes.append(r.materialize("raw_crawl"))) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(calls) == 1  # one build, in one MLflow run
    runs = client.search_runs([experiment])
    assert [r.info.run_id for r in runs] == calls and runs[0].info.status == "FINISHED"
    assert sorted(o.reused for o in outcomes) == [False, True]
    assert {o.manifest.digest for o in outcomes} == {outcomes[0].manifest.digest}
    assert {o.mlflow_run_id for o in outcomes} == {calls[0]}
    assert runners[0].store.verify(outcomes[0].manifest) == []

    # A no-op rematerialization opens no run and names the building one, in Dagster's metadata too.
    again = [runners[0].materialize("raw_crawl"), runners[1].materialize("raw_crawl")]
    assert len(client.search_runs([experiment])) == 1 and len(calls) == 1
    assert all(o.reused and o.mlflow_run_id == calls[0] for o in again)
    meta = dagster_metadata(again[0], runners[0].store, runners[0].tracker.tracking_uri)
    assert meta["reused"] is True and meta["mlflow_run_id"] == calls[0]
    assert meta["mlflow_run"].url.endswith(f"/#/experiments/{experiment}/runs/{calls[0]}")
