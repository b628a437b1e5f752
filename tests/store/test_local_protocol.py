"""The store's commit protocol on a local root (no server): only committed manifests are visible."""

import os
import subprocess
import sys
import textwrap

from factory.core.files import MANIFEST
from factory.store import ArtifactStore, stage_key


def _write(text):
    def produce(out, work):
        (out / "data.txt").write_text(text)
        (out / "sub").mkdir()
        (out / "sub" / "more.txt").write_text(text * 2)
        return {}

    return produce


def test_build_killed_before_commit_is_invisible_and_the_next_build_succeeds(tmp_path):
    root = tmp_path / "store"
    store = ArtifactStore(root)
    old, _ = store.build("a", {"v": 1}, {}, _write("old"), code_version="v1")
    store.set_ref("a", old)
    # A process killed (no finally, no cleanup) after the stage wrote its files, before the commit.
    script = textwrap.dedent(f"""
        import os
        from factory.store import ArtifactStore
        store = ArtifactStore({str(root)!r})
        def produce(out, work):
            (out / "data.txt").write_text("new")
            (work / "checkpoint").write_text("step 3")
            return {{}}
        store._commit = lambda staged, manifest: os._exit(137)
        store.build("a", {{"v": 2}}, {{}}, produce, code_version="v1")
    """)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    assert subprocess.run([sys.executable, "-c", script], env=env).returncode == 137
    key = stage_key("a", {"v": 2}, {}, code_version="v1")
    assert store.find("a", key) is None
    assert store.latest("a").key == old.key  # the ref still names the last committed artifact
    assert (store.work_dir("a", key) / "checkpoint").read_text() == "step 3"  # resumable state kept
    # A folder at the final location without a manifest (a crashed copy) is invisible too.
    (root / "a" / key).mkdir()
    (root / "a" / key / "data.txt").write_text("half")
    assert store.find("a", key) is None
    new, reused = store.build("a", {"v": 2}, {}, _write("new"), code_version="v1")
    assert not reused and store.verify(new) == []
    assert (store.local_path(new) / "data.txt").read_text() == "new"
    assert sorted(p.name for p in (root / "a").iterdir() if not p.name.startswith(".tmp-")) == sorted(
        [old.key, new.key])


def test_local_root_reads_in_place(tmp_path):
    store = ArtifactStore(tmp_path)
    m, _ = store.build("a", {}, {}, _write("x"), code_version="v1")
    assert store.local_path(m) == store.path_of(m) == tmp_path / "a" / m.key
    assert store.local_file(m, "sub/more.txt") == tmp_path / "a" / m.key / "sub" / "more.txt"
    assert store.uri_of(m) == (tmp_path / "a" / m.key).as_uri()
    assert (tmp_path / "a" / m.key / MANIFEST).exists()
    assert ArtifactStore(f"file://{tmp_path}").find("a", m.key).digest == m.digest
