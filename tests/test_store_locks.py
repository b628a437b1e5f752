"""Concurrent builds of one key: one build, everybody reuses it, killed builds leave nothing behind."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from factory.locks import FileLock
from factory.store import ArtifactStore


def test_two_concurrent_builds_of_one_key_build_once_and_share_the_artifact(tmp_path, build_concurrently):
    # One store per builder, as two processes would have.
    calls, results = build_concurrently([ArtifactStore(tmp_path), ArtifactStore(tmp_path)])
    assert len(calls) == 1
    (m1, r1), (m2, r2) = results
    assert m1.digest == m2.digest and m1.to_json() == m2.to_json()
    assert sorted([r1, r2]) == [False, True]
    store = ArtifactStore(tmp_path)
    assert store.verify(m1) == []
    assert (store.path_of(m1) / "data.txt").read_text() == "built once"
    assert not list((tmp_path / "a").glob(".tmp-*")) and not list((tmp_path / "a").glob(".work-*"))


def test_a_waiting_builder_says_whom_it_waits_for(tmp_path):
    store = ArtifactStore(tmp_path)
    messages = []
    with store.lock("a", "k1"):
        waiter = threading.Thread(target=lambda: store.lock("a", "k1", log=messages.append).__enter__().release())
        waiter.start()
        time.sleep(0.6)
        assert waiter.is_alive()  # blocked while the lock is held
    waiter.join(5)
    assert not waiter.is_alive()
    assert len(messages) == 1 and messages[0].startswith("waiting for k1.build.lock, held by ")


def _build_and_hang(root, started):
    def produce(out, work):
        (out / "half.bin").write_bytes(b"x" * 1000)
        (work / "step-1.ckpt").write_text("resumable state")
        started.set()
        time.sleep(600)  # killed here
        return {}

    ArtifactStore(root).build("a", {"x": 1}, {}, produce, code_version="v1")


def test_a_killed_builder_releases_the_lock_and_its_staging_is_removed_by_the_next_build(tmp_path):
    ctx = multiprocessing.get_context("fork")
    started = ctx.Event()
    proc = ctx.Process(target=_build_and_hang, args=(tmp_path, started))
    proc.start()
    assert started.wait(60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    stale = list((tmp_path / "a").glob(".tmp-*"))
    assert len(stale) == 1 and (stale[0] / "half.bin").exists()  # what the kill left behind

    seen = {}

    def produce(out, work):
        seen["resumed"] = (work / "step-1.ckpt").read_text()  # the key's work folder survives a crash
        seen["staging"] = sorted(p.name for p in (tmp_path / "a").glob(".tmp-*"))
        (out / "data.txt").write_text("done")
        return {}

    store = ArtifactStore(tmp_path)
    started_at = time.monotonic()
    manifest, reused = store.build("a", {"x": 1}, {}, produce, code_version="v1")
    assert not reused and time.monotonic() - started_at < 5  # the dead builder's flock is gone
    assert seen["resumed"] == "resumable state"
    assert seen["staging"] == [f".tmp-{manifest.key}-" + seen["staging"][0].rsplit("-", 1)[1]]  # only its own
    assert stale[0].name not in seen["staging"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [manifest.key]
    assert store.verify(manifest) == []


def test_file_lock_excludes_another_process_until_released(tmp_path):
    path = tmp_path / "k.lock"
    code = f"from factory.locks import FileLock; FileLock({str(path)!r}).acquire(); print('acquired')"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with FileLock(path) as held:
        child = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            child.wait(3)  # waits while this process holds it
        assert path.read_text() == held.owner
    assert child.communicate(timeout=30)[0].strip() == "acquired"
