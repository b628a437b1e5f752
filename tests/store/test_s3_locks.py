"""Build leases on a real S3 server (SeaweedFS): conditional writes make one builder of a key win,
a live holder's renewals keep waiters out, a dead holder's lease is taken over after its ttl."""

import json
import threading
import time

import pytest

from factory.locks import LeaseLock, LockLost
from factory.store import ArtifactStore

pytestmark = pytest.mark.cluster


def test_two_concurrent_builds_on_s3_build_once(s3_prefix, s3_env, tmp_path, build_concurrently):
    bucket, base = s3_prefix
    # Two machines: one bucket, each its own local staging.
    stores = [ArtifactStore(f"s3://{bucket}/{base}/art", local_dir=tmp_path / f"node{i}") for i in range(2)]
    calls, results = build_concurrently(stores, produce_seconds=1.0)
    assert len(calls) == 1
    (m1, r1), (m2, r2) = results
    assert m1.to_json() == m2.to_json() and sorted([r1, r2]) == [False, True]
    assert ArtifactStore(f"s3://{bucket}/{base}/art").verify(m1) == []


def test_a_renewed_lease_keeps_waiters_out_and_a_dead_ones_is_taken_over(s3_prefix, s3_env):
    import s3fs

    bucket, base = s3_prefix
    fs = s3fs.S3FileSystem()
    path = f"{bucket}/{base}/.locks/a/k.build.lock"
    holder = LeaseLock(fs, path, ttl=2.0)
    holder.acquire()
    waiter = LeaseLock(fs, path, ttl=2.0)
    got = threading.Event()
    thread = threading.Thread(target=lambda: (waiter.acquire(), got.set()))
    thread.start()
    assert not got.wait(5.0)  # 2.5 ttls: the holder's renewals keep the lease
    holder.release()  # handed back: taken at once
    assert got.wait(5.0)
    thread.join()

    # The waiter now "dies": no renewals, no hand-back. A third builder takes over after the ttl,
    # and the dead one's next renewal would fail.
    waiter._stop.set()
    waiter._renewer.join()
    started = time.monotonic()
    thief = LeaseLock(fs, path, ttl=2.0)
    thief.acquire()
    assert time.monotonic() - started >= 1.0  # waited for the expiry (LastModified has 1 s resolution)
    waiter._stop.clear()  # it wakes up: its next renewal finds the lease taken over
    waiter._renew()
    with pytest.raises(LockLost):
        waiter.check()
    waiter.release()  # leaves the thief's lease alone
    assert json.loads(fs.cat_file(path))["owner"] == thief.owner
    thief.release()
