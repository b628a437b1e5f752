"""The recipe's first curation step: personal data masked in the text, pages of blocked hosts dropped
before extraction, both counted by extracted_docs."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from factory.core.stage import StageContext
from factory.data.extract import ExtractConfig, run_extracted_docs
from factory.data.pii import mask_pii
from factory.data.url_blocklist import BlocklistConfig, UrlBlocklist
from factory.data.warc import WarcShardWriter, response_record


@pytest.mark.parametrize(("text", "masked", "counts"), [
    ("Mail guido@python.org or j.doe+list@mail.example.co.uk.", "Mail <EMAIL> or <EMAIL>.", {"email": 2}),
    ("Call +1 415-555-0132, (030) 1234 5678 or 415.555.0132 today.",
     "Call <PHONE>, <PHONE> or <PHONE> today.", {"phone": 3}),
    ("Hosts 151.101.1.69 and 93.184.216.34 answered.", "Hosts <IP> and <IP> answered.", {"ip": 2}),
])
def test_personal_data_is_masked_and_counted(text, masked, counts):
    assert mask_pii(text) == (masked, counts)


@pytest.mark.parametrize("text", [
    "Bind to 127.0.0.1 or 0.0.0.0; the router is 192.168.1.1, the example 192.0.2.7, mDNS 224.0.0.251.",
    "Python 3.11.7 came out on 2024-06-01 (or 2024.06.01); see version 1.2.3.4.5 and 10.15.7.",
    "The years 1999 2000 2001 and cells 123 456 789; isbn 978-3-16-148410-0; pi is 3.14159.",
    "uuid 550e8400-e29b-41d4-a716-446655440000; decorator @property; the map f@x.",
    "From: author@example.com To: editor@mail.example.org, root@host.test; see 4.8.1.2 and Thunderbird 1.5.0.9.",
])
def test_text_without_personal_data_is_untouched(text):
    assert mask_pii(text) == (text, {})


def test_blocklist_matches_domains_their_subdomains_and_host_labels(tmp_path):
    listed = tmp_path / "adult.txt"
    listed.write_text("# adult category\nbad.example\n\nworse.example  # with a comment\n")
    block = UrlBlocklist.from_config(BlocklistConfig(blocked_domains=["Listed.Example"], blocklist_file=str(listed)))
    for url in ("https://listed.example/a", "http://www.listed.example/", "https://bad.example/x",
                "https://cdn.worse.example/p?q=1", "https://free-porn-site.example/", "https://xxx.example.org/"):
        assert block.blocked(url), url
    for url in ("https://docs.python.org/3/", "https://www.essex.ac.uk/", "https://notbad.example/",
                "https://example.org/porn-free-zone", "not a url"):
        assert not block.blocked(url), url


def test_the_blocklist_file_keys_the_extraction(tmp_path):
    from factory.data.extract import ExtractConfig
    from factory.runner import external_fingerprint

    listed = tmp_path / "adult.txt"
    listed.write_text("one.example\n")
    cfg = ExtractConfig(blocklist=BlocklistConfig(blocklist_file=str(listed)))
    assert cfg.external_files() == [str(listed)] and ExtractConfig().external_files() == []
    before = external_fingerprint(cfg)
    listed.write_text("one.example\ntwo.example\n")
    assert external_fingerprint(cfg) != before


def test_a_missing_blocklist_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="blocklist_file"):
        UrlBlocklist.from_config(BlocklistConfig(blocklist_file=str(tmp_path / "absent.txt")))


def test_extraction_drops_blocked_hosts_first_and_masks_personal_data(tmp_path):
    body = ("<html><head><title>Contact</title></head><body><article><p>"
            + "Write to the maintainer at alice@python.org or call +44 20 7946 0958 about the release. " * 3
            + "</p></article></body></html>").encode()
    records = [response_record("https://docs.example.org/contact", "2024-05-01T00:00:00Z", body),
               response_record("https://www.blocked.example/contact", "2024-05-01T00:00:00Z", body)]
    crawl = tmp_path / "crawl"
    with WarcShardWriter(crawl / "warc", shard_bytes=1 << 20) as writer:
        for r in records:
            writer.write(r)
    cfg = ExtractConfig(min_text_chars=100, blocklist=BlocklistConfig(blocked_domains=["blocked.example"]))
    meta = run_extracted_docs(cfg, {"raw_crawl": crawl}, tmp_path / "out", StageContext(log=lambda m: None))
    (doc,) = pq.read_table(tmp_path / "out" / "docs.parquet").to_pylist()
    assert doc["url"] == "https://docs.example.org/contact"
    assert "alice@python.org" not in doc["text"] and "7946" not in doc["text"]
    assert doc["text"].count("<EMAIL>") == 3 and doc["text"].count("<PHONE>") == 3
    assert meta["skipped_or_dropped"]["blocked_url"] == 1 and meta["docs_out"] == 1
    assert meta["pii_masked"] == {"email": 3, "phone": 3}
