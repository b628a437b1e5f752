"""URL-level safety filter: pages of blocked domains are dropped before extraction (recipe: "Web
Data Curation", PII and safety filtering: "domains ranked harmful ... domains known to contain
adult content").

A page is blocked when its host is a listed domain or one of its subdomains (``blocked_domains``,
e.g. the adult category of a public blocklist such as UT1's, given as a file of one domain a line
with ``blocklist_file``), or when a label of its host, split at dots and dashes, is one of
``blocked_host_terms`` (words that name adult content: ``free-porn-site.example`` has the label
``porn``; ``essex.ac.uk`` has no label ``sex``). Nothing is downloaded: a list is a file the user
supplies or the configured names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field

from factory.core.stage import StageConfig

# Host labels that name adult content in the blocklists' own domain names; a small default, not a list.
DEFAULT_HOST_TERMS = ("porn", "porno", "xxx", "hentai", "nsfw", "camgirl", "escort", "xvideos", "xhamster")
_LABEL_SPLIT = re.compile(r"[.-]")


class BlocklistConfig(StageConfig):
    """Which hosts' pages are dropped before extraction."""

    blocked_domains: list[str] = Field([], description="Domains whose pages (and subdomains') are dropped.")
    blocklist_file: str = Field("", description="A file of more blocked domains, one a line ('#' comments).")
    blocked_host_terms: list[str] = Field(
        list(DEFAULT_HOST_TERMS), description="A host with one of these as a dot/dash-separated label is dropped.")


class UrlBlocklist:
    """``blocked(url)``: whether the URL's host is on the list (see the module doc)."""

    def __init__(self, domains: Iterable[str], host_terms: Iterable[str]):
        self.domains = frozenset(d.strip().lower().strip(".") for d in domains if d.strip())
        self.host_terms = frozenset(t.strip().lower() for t in host_terms if t.strip())

    @classmethod
    def from_config(cls, cfg: BlocklistConfig) -> UrlBlocklist:
        domains = list(cfg.blocked_domains)
        if cfg.blocklist_file:
            path = Path(cfg.blocklist_file).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"blocklist_file {path} does not exist")
            domains += [line.split("#", 1)[0] for line in path.read_text().splitlines()]
        return cls(domains, cfg.blocked_host_terms)

    def blocked(self, url: str) -> bool:
        host = (urlsplit(url).hostname or "").lower()
        if not host:
            return False
        labels = host.split(".")
        # The host itself and every parent domain: a.b.example.com -> b.example.com, example.com, com.
        if any(".".join(labels[i:]) in self.domains for i in range(len(labels))):
            return True
        return any(label in self.host_terms for label in _LABEL_SPLIT.split(host))
