"""One local cluster (factory/localcluster.py) for the cluster tests: up under a temp folder on a
port base of its own (not a user's running cluster's), always brought down at the end."""

from __future__ import annotations

import os
import time

import pytest

from factory import localcluster

# Away from the default base (26000) that `factory cluster up` uses.
TEST_PORT_BASE = int(os.environ.get("FACTORY_TEST_CLUSTER_PORT_BASE", "27200"))


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("cluster")
    t0 = time.monotonic()
    try:
        # 10 min: on the shared 2-core host the MLflow server alone has taken over 3 min to answer.
        state = localcluster.up(state_dir, base=TEST_PORT_BASE, timeout=600, log=print)
        print(f"local cluster up in {time.monotonic() - t0:.1f} s")
        yield state
    finally:
        # Idempotent: a no-op when the test that checks `down` already stopped it.
        localcluster.down(state_dir, log=print)
