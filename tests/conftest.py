"""Shared test setup: offline hubs, quiet GE, no Ray auth tokens, one torch thread, xdist scheduling.

Tests run many tiny forward passes; a second OpenMP thread only spin-waits on them (measured
15-25x slower on a busy 2-core host), so the whole suite uses one intra-op thread.
"""

import threading
import time

import pytest
import torch

from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV, apply_env

torch.set_num_threads(1)
apply_env({**PROCESS_ENV, **EMBEDDED_RAY_ENV})


def pytest_xdist_make_scheduler(config, log):
    """``make test`` runs two pytest-xdist workers: a module's tests run on one worker, in order, so
    its module-scoped fixtures (the whole graph of test_e2e, a smoke profile's Ray) are built once;
    ``tests/cluster`` goes to one worker as a whole, since its modules share the session's local
    cluster (fixed ports) and its last test brings it down. (xdist's own ``--dist loadgroup`` tags
    node ids, which pytest 9 no longer lets a plugin rewrite.)"""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/cluster" if module.startswith("tests/cluster/") else module

    return ModuleScheduling(config, log)


def _build_chain(store):
    """raw_crawl -> extracted_docs -> quantized_release, one tiny file each, refs set: the smallest
    lineage chain an audit can walk back to the crawl. Returns the three manifests."""

    def produce(text):
        def fn(out, work):
            (out / "f.bin").write_bytes(text.encode())
            return {}

        return fn

    crawl, _ = store.build("raw_crawl", {}, {}, produce("warc"), code_version="v1")
    store.set_ref("raw_crawl", crawl)
    docs, _ = store.build("extracted_docs", {}, {"raw_crawl": crawl}, produce("docs"), code_version="v1")
    store.set_ref("extracted_docs", docs)
    release, _ = store.build("quantized_release", {}, {"extracted_docs": docs, "raw_crawl": crawl}, produce("model"),
                             code_version="v1")
    store.set_ref("quantized_release", release)
    return crawl, docs, release


@pytest.fixture
def artifact_chain():
    return _build_chain


def _build_concurrently(stores, produce_seconds: float = 0.5):
    """Build one key from two stores at once (as two machines would), with a slow stage that notes
    each call. Returns (calls, [(manifest, reused) of each builder])."""
    calls, results = [], []

    def produce(out, work):
        calls.append(threading.get_ident())
        time.sleep(produce_seconds)  # the other builder arrives while this one builds
        (out / "data.txt").write_text("built once")
        return {"builder": len(calls)}

    threads = [threading.Thread(target=lambda st=st: results.append(
        st.build("a", {"x": 1}, {}, produce, code_version="v1"))) for st in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return calls, results


@pytest.fixture
def build_concurrently():
    return _build_concurrently


def _interrupt_and_await_stop(proc, client, job_id: str, limit: float = 30.0) -> float:
    """SIGINT the process that runs a materialization (what terminating a Dagster run does to its
    step process) and wait until its Ray job is STOPPED; fails after ``limit`` seconds. Returns the
    seconds it took."""
    import signal

    proc.send_signal(signal.SIGINT)
    t0 = time.monotonic()
    while client.get_job_status(job_id) != "STOPPED":
        status = client.get_job_status(job_id)
        assert time.monotonic() - t0 < limit, f"job still {status} {limit:.0f} s after the interrupt"
        time.sleep(0.5)
    seconds = time.monotonic() - t0
    print(f"Ray job STOPPED {seconds:.1f} s after the run was interrupted")
    proc.wait(timeout=60)
    return seconds


@pytest.fixture
def interrupt_and_await_stop():
    return _interrupt_and_await_stop

