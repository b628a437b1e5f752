"""Lineage audit: a chain of artifacts verifies back to raw_crawl, and one flipped byte fails it."""

from factory.cli import main
from factory.lineage import audit
from factory.store import ArtifactStore


def _chain(store):
    def produce(text):
        def fn(out, work):
            (out / "f.bin").write_bytes(text.encode())
            return {}
        return fn

    crawl, _ = store.build("raw_crawl", {}, {}, produce("warc"))
    store.set_ref("raw_crawl", crawl)
    docs, _ = store.build("extracted_docs", {}, {"raw_crawl": crawl}, produce("docs"))
    store.set_ref("extracted_docs", docs)
    release, _ = store.build("quantized_release", {}, {"extracted_docs": docs, "raw_crawl": crawl}, produce("model"))
    store.set_ref("quantized_release", release)
    return crawl, docs, release


def test_audit_walks_back_to_raw_crawl(tmp_path):
    store = ArtifactStore(tmp_path)
    _chain(store)
    nodes = audit(store, "quantized_release")
    assert [n.asset for n in nodes][0] == "quantized_release"
    assert "raw_crawl" in {n.manifest.stage for n in nodes}
    assert all(not n.problems for n in nodes)


def test_flipped_byte_fails_the_audit_loudly(tmp_path, monkeypatch, capsys):
    store = ArtifactStore(tmp_path / "artifacts")
    crawl, _, _ = _chain(store)
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    assert main(["lineage", "quantized_release", "--profile", "smoke"]) == 0
    target = store.path_of(crawl) / "f.bin"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0x80
    target.write_bytes(bytes(data))
    assert main(["lineage", "quantized_release", "--profile", "smoke"]) == 1
    captured = capsys.readouterr()
    assert "AUDIT FAILED" in captured.err
    assert "raw_crawl" in captured.out and "sha256 differs" in captured.out
