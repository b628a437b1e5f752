"""Shared test setup: offline hubs, quiet GE, no Ray auth tokens, one torch thread.

Tests run many tiny forward passes; a second OpenMP thread only spin-waits on them (measured
15-25x slower on a busy 2-core host), so the whole suite uses one intra-op thread.
"""

import pytest
import torch

from factory.core.environment import EMBEDDED_RAY_ENV, PROCESS_ENV, apply_env

torch.set_num_threads(1)
apply_env({**PROCESS_ENV, **EMBEDDED_RAY_ENV})


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
