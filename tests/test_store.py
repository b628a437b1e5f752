"""Artifact store: content keys, reuse, atomic writes, integrity checks."""

import pytest

from factory.store import ArtifactStore, stage_key


def _write(text):
    def produce(out, work):
        (out / "data.txt").write_text(text)
        (out / "sub").mkdir()
        (out / "sub" / "more.txt").write_text(text * 2)
        return {"chars": len(text)}

    return produce


def test_build_then_reuse_same_key(tmp_path):
    store = ArtifactStore(tmp_path)
    m1, reused1 = store.build("a", {"x": 1}, {}, _write("hello"), code_version="v1")
    m2, reused2 = store.build("a", {"x": 1}, {}, _write("never written"), code_version="v1")
    assert (reused1, reused2) == (False, True)
    assert m1.digest == m2.digest
    assert (store.path_of(m1) / "data.txt").read_text() == "hello"
    assert set(m1.files) == {"data.txt", "sub/more.txt"}
    assert m1.metadata == {"chars": 5}


def test_config_code_version_and_inputs_change_the_key(tmp_path):
    store = ArtifactStore(tmp_path)
    up, _ = store.build("up", {"v": 1}, {}, _write("u"), code_version="v1")
    assert up.code_version == "v1" and up.key == stage_key("up", {"v": 1}, {}, code_version="v1")
    k1 = stage_key("down", {"v": 1}, {"up": up}, code_version="v1")
    assert k1 != stage_key("down", {"v": 2}, {"up": up}, code_version="v1")
    assert k1 != stage_key("down", {"v": 1}, {"up": up}, code_version="v2")
    up2, _ = store.build("up", {"v": 2}, {}, _write("u2"), code_version="v1")
    assert k1 != stage_key("down", {"v": 1}, {"up": up2}, code_version="v1")


def test_failed_stage_leaves_no_artifact(tmp_path):
    store = ArtifactStore(tmp_path)

    def boom(out, work):
        (out / "partial.txt").write_text("half")
        raise RuntimeError("stage crashed")

    with pytest.raises(RuntimeError):
        store.build("a", {}, {}, boom, code_version="v1")
    assert list((tmp_path / "a").glob("*")) == list((tmp_path / "a").glob(".work-*"))
    # The work folder survives a crash so a training stage can resume from its checkpoints.
    assert len(list((tmp_path / "a").glob(".work-*"))) == 1


def test_verify_detects_a_flipped_byte_and_rebuilds(tmp_path):
    store = ArtifactStore(tmp_path)
    m, _ = store.build("a", {}, {}, _write("payload"), code_version="v1")
    assert store.verify(m) == []
    path = store.path_of(m) / "data.txt"
    data = bytearray(path.read_bytes())
    data[0] ^= 0x01
    path.write_bytes(bytes(data))
    assert any("data.txt" in p for p in store.verify(m))
    m2, reused = store.build("a", {}, {}, _write("payload"), code_version="v1")
    assert not reused and store.verify(m2) == []


def test_refs_point_at_latest(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(FileNotFoundError):
        store.latest("a")
    m, _ = store.build("a", {}, {}, _write("x"), code_version="v1")
    store.set_ref("a", m)
    assert store.latest("a").key == m.key
