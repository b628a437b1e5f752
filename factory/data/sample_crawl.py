"""The embedded default crawl: real documents installed by Debian packages, served as web pages
(recipe: "Web Data Curation" — its input is raw HTML from a crawl; this is a small offline one).

Three sources, each a real corpus mapped to the URLs it is published under:
- ``python_docs``: the Python 3.11 documentation (package python3.11-doc) — code-heavy HTML with
  Sphinx navigation, sidebars and footers around the content; https://docs.python.org/3.11/...
- ``debian_reference``: the Debian Reference in several languages (packages debian-reference-XX);
  https://www.debian.org/doc/manuals/debian-reference/chNN.LANG.html
- ``python_source``: Python standard-library modules rendered as a source browser would serve them
  (breadcrumb navigation, the module summary, the file in ``<pre><code>``, a sibling-file footer);
  https://github.com/python/cpython/blob/3.11/Lib/...

Selection and dates are deterministic: pages are ranked by a seeded hash of their URL, the first
``max_pages`` of each source are taken, capture times step one minute from ``crawl_start``, and the
first ``recapture_fraction`` of each source is captured a second time ``recapture_days`` later
(same URL, newer WARC-Date), so URL dedup downstream has real re-captures to resolve.
"""

from __future__ import annotations

import ast
import hashlib
import html
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

SOURCES = ("python_docs", "debian_reference", "python_source")
LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "ja", "zh-cn")

PYTHON_DOCS_DIR = Path("/usr/share/doc/python3.11/html")
PYTHON_DOCS_URL = "https://docs.python.org/3.11/"
DEBIAN_REFERENCE_DIR = Path("/usr/share/debian-reference")
DEBIAN_REFERENCE_URL = "https://www.debian.org/doc/manuals/debian-reference/"
CPYTHON_URL = "https://github.com/python/cpython/blob/3.11/Lib/"
STDLIB_DIRS = (Path("/usr/lib/python3.11"), Path(sysconfig.get_paths()["stdlib"]))
# Python docs folders that are not pages (static assets, reST sources, downloads).
_DOCS_SKIP = ("_static", "_sources", "_downloads", "_images")
# Stdlib folders that are not library modules (test suites, bundled wheels, IDLE resources).
_SOURCE_SKIP = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "ensurepip", "lib2to3"}
HINT = "run `make system-deps` (apt-get install python3.11-doc debian-reference-{en,de,fr,es,it,pt,ja,zh-cn})"


@dataclass(frozen=True)
class SampleDoc:
    """One fetched document of the sample crawl."""

    source: str
    url: str
    path: Path
    body: bytes
    content_type: str


@dataclass(frozen=True)
class Capture:
    """One capture of a document: what a crawler wrote into a WARC response record."""

    url: str
    date: str  # WARC-Date, e.g. 2024-06-01T00:01:00Z
    body: bytes
    content_type: str
    source: str


def _rank(seed: int, url: str) -> str:
    return hashlib.sha1(f"{seed}:{url}".encode()).hexdigest()


def _package_files(package: str) -> list[Path]:
    """Files a Debian package installed (``dpkg -L``), or [] when dpkg or the package is absent."""
    try:
        listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=False).stdout
    except FileNotFoundError:
        return []
    return [Path(line) for line in listing.splitlines() if line.endswith(".html")]


def python_docs() -> list[tuple[str, Path]]:
    if not PYTHON_DOCS_DIR.is_dir():
        raise FileNotFoundError(f"Python 3.11 documentation not found at {PYTHON_DOCS_DIR}: {HINT}")
    pages = []
    for path in sorted(PYTHON_DOCS_DIR.rglob("*.html")):
        rel = path.relative_to(PYTHON_DOCS_DIR)
        if rel.parts[0] not in _DOCS_SKIP:
            pages.append((PYTHON_DOCS_URL + rel.as_posix(), path))
    return pages


def debian_reference(languages: tuple[str, ...]) -> list[tuple[str, Path]]:
    pages = []
    for lang in languages:
        files = _package_files(f"debian-reference-{lang}") or sorted(DEBIAN_REFERENCE_DIR.glob(f"*.{lang}.html"))
        files = [f for f in files if f.name.endswith(f".{lang}.html") and f.is_file()]
        if not files:
            raise FileNotFoundError(f"Debian Reference ({lang}) not found in {DEBIAN_REFERENCE_DIR}: {HINT}")
        pages += [(DEBIAN_REFERENCE_URL + f.name, f) for f in sorted(files)]
    return pages


def _stdlib_dir() -> Path:
    for root in STDLIB_DIRS:
        if (root / "os.py").is_file():
            return root
    raise FileNotFoundError(f"Python 3.11 standard library not found in {[str(d) for d in STDLIB_DIRS]}: {HINT}")


def python_source() -> list[tuple[str, Path]]:
    root = _stdlib_dir()
    pages = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if not _SOURCE_SKIP.intersection(rel.parts) and not rel.name.startswith("test_"):
            pages.append((CPYTHON_URL + rel.as_posix(), path))
    return pages


def source_page(url: str, path: Path) -> bytes:
    """A stdlib module as a source browser serves it: breadcrumbs, summary, code, sibling links."""
    code = path.read_text(encoding="utf-8", errors="replace")
    rel = url[len(CPYTHON_URL):]
    parts = rel.split("/")
    try:
        doc = ast.get_docstring(ast.parse(code)) or ""
    except SyntaxError:  # a few stdlib files are templates or Python-2 fixtures
        doc = ""
    summary = doc.split("\n\n")[0].strip()
    crumbs = " / ".join(
        [f'<a href="{CPYTHON_URL}">cpython</a>', f'<a href="{CPYTHON_URL}">Lib</a>']
        + [f'<a href="{CPYTHON_URL}{"/".join(parts[:i + 1])}">{html.escape(p)}</a>' for i, p in enumerate(parts[:-1])]
        + [html.escape(parts[-1])]
    )
    siblings = sorted(p.name for p in path.parent.glob("*.py") if p != path)
    base = CPYTHON_URL + "/".join(parts[:-1]) + ("/" if len(parts) > 1 else "")
    links = "".join(f'<li><a href="{base}{html.escape(s)}">{html.escape(s)}</a></li>' for s in siblings)
    lines = code.count("\n") + 1
    page = (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>cpython/Lib/{html.escape(rel)} at 3.11 · python/cpython</title></head>\n<body>\n"
        f'<header class="site-header"><nav aria-label="Breadcrumb">{crumbs}</nav></header>\n'
        f'<main><article class="blob">\n<h1>Lib/{html.escape(rel)}</h1>\n'
        + (f"<p>{html.escape(summary)}</p>\n" if summary else "")
        + f'<div class="file-meta">{lines} lines · {len(code.encode())} bytes</div>\n'
        f'<pre><code class="language-python">{html.escape(code)}</code></pre>\n</article></main>\n'
        f'<footer><nav class="files"><h2>Files in this directory</h2><ul>{links}</ul></nav></footer>\n'
        f"</body></html>\n"
    )
    return page.encode("utf-8")


def sample_documents(sources: tuple[str, ...], languages: tuple[str, ...], max_pages: int,
                     seed: int) -> list[SampleDoc]:
    """The first ``max_pages`` documents of each source by seeded URL hash, in that order."""
    unknown = set(sources) - set(SOURCES)
    if unknown:
        raise ValueError(f"unknown sample sources {sorted(unknown)}; valid: {list(SOURCES)}")
    bad_langs = set(languages) - set(LANGUAGES)
    if bad_langs:
        raise ValueError(f"unknown Debian Reference languages {sorted(bad_langs)}; valid: {list(LANGUAGES)}")
    docs: list[SampleDoc] = []
    for source in sources:
        listed = {"python_docs": python_docs, "python_source": python_source}.get(source)
        pages = listed() if listed else debian_reference(languages)
        chosen = sorted(pages, key=lambda page: _rank(seed, page[0]))[:max_pages]
        for url, path in chosen:
            body = source_page(url, path) if source == "python_source" else path.read_bytes()
            docs.append(SampleDoc(source, url, path, body, "text/html; charset=utf-8"))
    return docs


def _warc_date(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def sample_captures(docs: list[SampleDoc], crawl_start: str, recapture_fraction: float,
                    recapture_days: int) -> Iterator[Capture]:
    """Every document once, one minute apart from ``crawl_start``; then the first
    ``recapture_fraction`` of each source again ``recapture_days`` later."""
    start = datetime.fromisoformat(crawl_start.replace("Z", "+00:00"))
    by_source: dict[str, list[SampleDoc]] = {}
    for doc in docs:
        by_source.setdefault(doc.source, []).append(doc)
    for i, doc in enumerate(docs):
        yield Capture(doc.url, _warc_date(start + timedelta(minutes=i)), doc.body, doc.content_type, doc.source)
    later = start + timedelta(days=recapture_days)
    n = 0
    for source_docs in by_source.values():
        for doc in source_docs[: int(len(source_docs) * recapture_fraction)]:
            yield Capture(doc.url, _warc_date(later + timedelta(minutes=n)), doc.body, doc.content_type, doc.source)
            n += 1
