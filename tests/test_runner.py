"""Runner keys: configs, external inbox files and the stale set, without running any stage."""

from factory.config import load_profile
from factory.runner import Runner
from factory.store import stage_key


def test_new_inbox_warc_changes_the_raw_crawl_key(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    runner = Runner(load_profile("smoke"), log=lambda _: None)
    spec = runner.specs["raw_crawl"]
    before = runner.key_config(spec)
    assert before["config"]["inbox"] == str(tmp_path / "inbox")
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "new.warc.gz").write_bytes(b"\x1f\x8b")
    after = runner.key_config(spec)
    assert before["external"] != after["external"]
    version = spec.code_version
    assert stage_key("raw_crawl", before, {}, code_version=version) != stage_key("raw_crawl", after, {},
                                                                                 code_version=version)


def test_nothing_built_means_everything_is_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORY_HOME", str(tmp_path))
    runner = Runner(load_profile("smoke"), log=lambda _: None)
    assert runner.stale_assets() == list(runner.specs)
