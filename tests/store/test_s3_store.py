"""The artifact store on a real S3 server (SeaweedFS): commit protocol, reuse, digest checks on
download, the lineage audit and the external fingerprint of S3 WARC inputs."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from factory.cli import main
from factory.data.crawl import CrawlConfig
from factory.lineage import audit
from factory.runner import external_fingerprint
from factory.store import ArtifactIntegrityError, ArtifactStore, stage_key

pytestmark = pytest.mark.cluster


def _write(text):
    def produce(out, work):
        (out / "data.txt").write_text(text)
        (out / "sub").mkdir()
        (out / "sub" / "more.bin").write_bytes(text.encode() * 1000)
        return {"chars": len(text)}

    return produce


def _keys(client, bucket, prefix):
    listing = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(o["Key"] for o in listing.get("Contents", []))


def _flip_one_byte(client, bucket, key):
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    body[len(body) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))


def test_build_commits_with_the_manifest_last_and_is_reused(s3_prefix, s3_env, tmp_path):
    bucket, base = s3_prefix
    store = ArtifactStore(f"s3://{bucket}/{base}/art", local_dir=tmp_path / "home")
    m1, reused1 = store.build("a", {"x": 1}, {}, _write("hello"), code_version="v1")
    m2, reused2 = store.build("a", {"x": 1}, {}, _write("never written"), code_version="v1")
    assert (reused1, reused2) == (False, True) and m1.digest == m2.digest
    assert _keys(s3_env.client(), bucket, f"{base}/art/a/{m1.key}/") == [
        f"{base}/art/a/{m1.key}/{name}" for name in ("data.txt", "manifest.json", "sub/more.bin")]
    assert store.uri_of(m1) == f"s3://{bucket}/{base}/art/a/{m1.key}"
    folder = store.local_path(m1)
    assert folder == tmp_path / "home" / "cache" / "a" / m1.key
    assert (folder / "data.txt").read_text() == "hello"
    assert not list((tmp_path / "home").glob("staging/a/*"))  # the staged output is gone after upload
    # A complete cached copy is reused without touching the store.
    store.local_file = None
    assert store.local_path(m1) == folder
    store.set_ref("a", m1)
    assert ArtifactStore(f"s3://{bucket}/{base}/art").latest("a").digest == m1.digest


def test_build_killed_before_its_manifest_leaves_no_visible_artifact(s3_prefix, s3_env, tmp_path):
    bucket, base = s3_prefix
    root = f"s3://{bucket}/{base}/art"
    store = ArtifactStore(root, local_dir=tmp_path / "home")
    old, _ = store.build("a", {"v": 1}, {}, _write("old"), code_version="v1")
    store.set_ref("a", old)
    # Killed (no cleanup at all) after every file was uploaded, just before the manifest PUT.
    script = textwrap.dedent(f"""
        import functools, os
        from pathlib import Path
        import factory.store
        from factory.locks import LeaseLock
        from factory.store import ArtifactStore
        # A 5 s lease (its ttl travels in the lease object): the next builder takes it over after 5 s, not 60.
        factory.store.LeaseLock = functools.partial(LeaseLock, ttl=5.0)
        store = ArtifactStore({root!r}, local_dir={str(tmp_path / "home")!r})
        def produce(out, work):
            (out / "data.txt").write_text("new")
            return {{}}
        store._write_manifest = lambda *args: os._exit(137)
        store.build("a", {{"v": 2}}, {{}}, produce, code_version="v1")
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    assert subprocess.run([sys.executable, "-c", script], env=env, timeout=120).returncode == 137
    key = stage_key("a", {"v": 2}, {}, code_version="v1")
    uploaded = _keys(s3_env.client(), bucket, f"{base}/art/a/{key}/")
    assert uploaded == [f"{base}/art/a/{key}/data.txt"]  # uploaded, never committed
    fresh = ArtifactStore(root, local_dir=tmp_path / "other")
    assert fresh.find("a", key) is None
    assert fresh.latest("a").key == old.key
    new, reused = fresh.build("a", {"v": 2}, {}, _write("new"), code_version="v1")
    assert not reused and fresh.verify(new) == []
    assert _keys(s3_env.client(), bucket, f"{base}/art/a/{key}/") == [
        f"{base}/art/a/{key}/{name}" for name in ("data.txt", "manifest.json", "sub/more.bin")]


def test_download_checks_every_digest(s3_prefix, s3_env, tmp_path):
    bucket, base = s3_prefix
    store = ArtifactStore(f"s3://{bucket}/{base}/art", local_dir=tmp_path / "home")
    m, _ = store.build("a", {}, {}, _write("payload"), code_version="v1")
    _flip_one_byte(s3_env.client(), bucket, f"{base}/art/a/{m.key}/sub/more.bin")
    with pytest.raises(ArtifactIntegrityError, match="sub/more.bin"):
        store.local_path(m)
    cache = tmp_path / "home" / "cache" / "a" / m.key
    assert not (cache / "manifest.json").exists() and not (cache / "sub" / "more.bin").exists()
    assert not list(cache.rglob("*.partial"))
    assert any("sub/more.bin" in p for p in store.verify(m))
    rebuilt, reused = store.build("a", {}, {}, _write("payload"), code_version="v1")  # a corrupt artifact is rebuilt
    assert not reused and (store.local_path(rebuilt) / "sub" / "more.bin").read_bytes() == b"payload" * 1000
    # Rebuilt with other bytes under the same key: the stale cached copy is not served.
    _flip_one_byte(s3_env.client(), bucket, f"{base}/art/a/{m.key}/data.txt")
    other, _ = store.build("a", {}, {}, _write("PAYLOAD"), code_version="v1")
    assert other.key == m.key and other.digest != rebuilt.digest
    assert (store.local_path(other) / "data.txt").read_text() == "PAYLOAD"


def test_lineage_audit_on_s3_fails_after_one_flipped_byte(s3_prefix, s3_env, tmp_path, monkeypatch, capsys,
                                                           artifact_chain):
    bucket, base = s3_prefix
    root = f"s3://{bucket}/{base}/art"
    crawl, _, _ = artifact_chain(ArtifactStore(root, local_dir=tmp_path))
    profile = tmp_path / "s3.yaml"
    profile.write_text(f"runtime:\n  home: {tmp_path}\n  artifact_root: {root}\n")
    monkeypatch.delenv("FACTORY_HOME", raising=False)
    assert all(not n.problems for n in audit(ArtifactStore(root), "quantized_release"))
    assert main(["lineage", "quantized_release", "--profile", str(profile)]) == 0
    _flip_one_byte(s3_env.client(), bucket, f"{base}/art/raw_crawl/{crawl.key}/f.bin")
    assert main(["lineage", "quantized_release", "--profile", str(profile)]) == 1
    captured = capsys.readouterr()
    assert "AUDIT FAILED" in captured.err
    assert "raw_crawl" in captured.out and "sha256 differs" in captured.out


def test_external_fingerprint_of_an_s3_warc_glob_follows_the_objects(s3_prefix, s3_env, monkeypatch):
    import s3fs

    heads = []
    real_info = s3fs.S3FileSystem._info

    async def counted_info(self, path, *args, **kwargs):
        heads.append(path)
        return await real_info(self, path, *args, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_info", counted_info)
    bucket, base = s3_prefix
    client = s3_env.client()
    client.put_object(Bucket=bucket, Key=f"{base}/crawl/seg-1/a.warc.gz", Body=b"first")
    client.put_object(Bucket=bucket, Key=f"{base}/crawl/seg-2/b.warc.gz", Body=b"second")
    config = CrawlConfig(warc_paths=[f"s3://{bucket}/{base}/crawl/*/*.warc.gz"])
    expected = [f"s3://{bucket}/{base}/crawl/seg-{i}/{n}.warc.gz" for i, n in ((1, "a"), (2, "b"))]
    assert config.external_files() == expected
    before = external_fingerprint(config)
    assert external_fingerprint(config) == before
    assert [h for h in heads if h.endswith(".warc.gz")] == []  # signatures from the folder listings, no HEAD per object
    client.put_object(Bucket=bucket, Key=f"{base}/crawl/seg-2/b.warc.gz", Body=b"changed")
    changed = external_fingerprint(config)
    assert changed != before
    client.put_object(Bucket=bucket, Key=f"{base}/crawl/seg-3/c.warc.gz", Body=b"third")
    assert external_fingerprint(config) not in (before, changed)


def test_runner_stages_locally_and_uploads_to_s3(s3_prefix, s3_env, tmp_path, monkeypatch):
    """The stage job hands a stage local folders: inputs downloaded into <home>/cache, output uploaded
    (``factory.jobs.run_stage_job``, run here in-process in place of a Ray Job)."""
    from factory.config import load_profile
    from factory.jobs import run_stage_job
    from factory.raycluster import RayJob
    from factory.runner import Runner

    bucket, base = s3_prefix
    profile_file = tmp_path / "s3.yaml"
    profile_file.write_text(yaml.safe_dump({"runtime": {"home": str(tmp_path / "home"),
                                                        "artifact_root": f"s3://{bucket}/{base}/art"}}))
    monkeypatch.delenv("FACTORY_HOME", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    seen = {}

    def fake_run_job(kind, request, log=None):  # the stage, minus the stage: reads inputs, writes out
        seen[request["asset"]] = request
        out = Path(request["out"])
        for name, folder in request["inputs"].items():
            (out / f"from-{name}.txt").write_text((Path(folder) / "crawl.json").read_text())
        (out / "crawl.json").write_text(json.dumps({"asset": request["asset"]}))
        return {"records": 1}

    class InProcess:  # the Ray Job, minus Ray
        def launch(self, job, log):
            return run_stage_job(job.entrypoint, job.metadata["request"], log)

    monkeypatch.setattr("factory.jobs.run_job", fake_run_job)
    monkeypatch.setattr("factory.runner.job_for", lambda profile, kind, request, submission_id=None, env=None:
                        RayJob("in-process", kind, submission_id, metadata={"request": request}))
    runner = Runner(load_profile(str(profile_file)), log=lambda _: None, launcher=InProcess())
    crawl = runner.materialize("raw_crawl")
    docs = runner.materialize("extracted_docs")
    home = tmp_path / "home"
    assert crawl.path == f"s3://{bucket}/{base}/art/raw_crawl/{crawl.manifest.key}" and not crawl.reused
    assert seen["extracted_docs"]["inputs"] == {"raw_crawl": str(home / "cache" / "raw_crawl" / crawl.manifest.key)}
    assert Path(seen["raw_crawl"]["out"]).is_relative_to(home / "staging")
    assert Path(seen["raw_crawl"]["work_dir"]).is_relative_to(home / "work")
    assert not Path(seen["raw_crawl"]["out"]).exists()  # staged output removed once uploaded
    stored = ArtifactStore(f"s3://{bucket}/{base}/art")
    assert stored.latest("extracted_docs").digest == docs.manifest.digest
    copied = stored.fs.cat_file(f"{bucket}/{base}/art/extracted_docs/{docs.manifest.key}/from-raw_crawl.txt")
    assert json.loads(copied) == {"asset": "raw_crawl"}
    assert runner.materialize("extracted_docs").reused
