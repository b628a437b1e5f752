"""Lineage audit: a chain of artifacts verifies back to raw_crawl, and one flipped byte fails it."""

from factory.cli import main
from factory.lineage import audit
from factory.store import ArtifactStore


def test_audit_walks_back_to_raw_crawl(tmp_path, artifact_chain):
    store = ArtifactStore(tmp_path)
    artifact_chain(store)
    nodes = audit(store, "quantized_release")
    assert [n.asset for n in nodes][0] == "quantized_release"
    assert "raw_crawl" in {n.manifest.stage for n in nodes}
    assert all(not n.problems for n in nodes)


def test_flipped_byte_fails_the_audit_loudly(tmp_path, monkeypatch, capsys, artifact_chain):
    store = ArtifactStore(tmp_path / "artifacts")
    crawl, _, _ = artifact_chain(store)
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
