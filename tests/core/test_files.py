"""File primitives of the artifact contract: digests are content-only, writes replace whole files."""

import hashlib

from factory.core.files import atomic_write_text, canonical_json, sha256_file


def test_canonical_json_ignores_key_order():
    assert canonical_json({"b": 1, "a": [1, 2]}) == canonical_json({"a": [1, 2], "b": 1}) == '{"a":[1,2],"b":1}'


def test_sha256_file_reads_in_chunks(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f", chunk=4096) == hashlib.sha256(data).hexdigest()


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "sub" / "ref.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["ref.json"]
