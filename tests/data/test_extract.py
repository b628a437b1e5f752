"""Main-content extraction and the extracted_docs stage: boilerplate out; code, TeX, alt text in;
markdown markers stripped; URL dedup keeps the newest capture; bad input counted."""

from __future__ import annotations

import gzip

import pyarrow.parquet as pq
import pytest

from factory.core.stage import StageContext
from factory.data.extract import ExtractConfig, normalize_url, run_extracted_docs, url_id
from factory.data.main_content import extract, strip_markdown
from factory.data.page_routing import PageRoutingConfig, page_domain
from factory.data.warc import WarcShardWriter, response_record

ARTICLE = (
    "<p>The extractor keeps the article text, which is long enough to be a paragraph, and more of it, "
    "with commas, clauses, and detail about the subject under discussion here.</p>"
    "<p>A second paragraph carries on with the discussion, adding context, numbers, and examples, so the "
    "container of the article clearly outweighs the navigation around it.</p>"
)


def page(content: str, title: str = "A page") -> str:
    return (
        f"<html><head><title>{title}</title><style>p {{ color: red }}</style></head><body>"
        '<header><a href="/">Home</a> <a href="/news">News</a></header>'
        '<nav><ul><li><a href="/a">Section A</a></li><li><a href="/b">Section B</a></li></ul></nav>'
        '<div id="cookie-banner">We use cookies to improve your experience. Accept all cookies?</div>'
        f'<div class="layout"><div class="sidebar"><a href="/x">Trending story one</a> '
        f'<a href="/y">Trending two</a></div>'
        f"<article>{content}</article></div>"
        '<div class="share">Share this on Facebook, Twitter</div>'
        "<script>var tracking = 'Boilerplate script text';</script>"
        "<footer>Copyright 2024 Example Corp. All rights reserved. Privacy policy.</footer></body></html>"
    )


def test_planted_boilerplate_removed_and_content_kept():
    result = extract(page(ARTICLE, "Title &amp; more"))
    assert "The extractor keeps the article text" in result.text
    assert "A second paragraph carries on" in result.text
    for junk in ("Home", "Section A", "cookies", "Trending", "Share this", "tracking", "Copyright", "color"):
        assert junk not in result.text, junk
    assert result.title == "Title & more"


def test_flagged_inline_element_ends_at_its_end_tag():
    html = page(ARTICLE + '<p>The report says <a class="share-button" href="#">Share</a> that the rest of '
                'this sentence stays in the article text, <span class="sr-only">Skip</span>after all.</p>')
    text = extract(html).text
    assert "The report says that the rest of this sentence stays in the article text, after all." in text


def test_heading_slug_ids_are_not_boilerplate():
    section = ('<section id="manifest-related-options"><h2 id="share-comments">Related options</h2>'
               "<p>This section of the documentation explains the manifest options, with enough words to count.</p>"
               "<pre>python setup.py sdist --manifest-only</pre></section>")
    text = extract(page(ARTICLE + section)).text
    assert "Related options" in text and "python setup.py sdist --manifest-only" in text


def test_text_after_scripts_and_styles_kept():
    html = ("<html><head><script>var s = '<body>';</script></head><body><p>" + "First paragraph words, " * 8
            + "</p><script>document.write('<div>' + \"</scr\" + \"ipt>\")</script><STYLE>p{}</STYLE>"
            + "<p>" + "Closing paragraph words, " * 8 + "</p></body></html>")
    text = extract(html).text
    assert text.startswith("First paragraph") and text.endswith("Closing paragraph words,")
    assert "document" not in text and "p{}" not in text


def test_malformed_markup_and_odd_nodes_do_not_crash():
    odd = ("<?xml version='1.0'?><!DOCTYPE html><p>Intro <?php echo 1; ?> text <![CDATA[x]]> "
           + "and more words, " * 10 + "</p><p>" + "<b><i>unclosed " * 50 + "</p></div></span>tail")
    text = extract(page(ARTICLE + odd)).text
    assert "Intro" in text and "and more words" in text and "<?php" not in text
    assert extract("").text == "" and extract("\x00<<>>").title == ""


def test_code_block_keeps_lines_and_indentation():
    code = 'def f(x):\n    if x &gt; 1:\n        return "a &amp; b"\n\n    return None'
    html = page(ARTICLE + '<pre><span class="k">def</span> f(x):\n    if x &gt; 1:\n'
                          '        return "a &amp; b"\n\n    return None</pre>')
    assert code == 'def f(x):\n    if x &gt; 1:\n        return "a &amp; b"\n\n    return None'
    result = extract(html)
    assert 'def f(x):\n    if x > 1:\n        return "a & b"\n\n    return None' in result.text
    assert result.n_code_blocks == 1


def test_tex_kept_from_mathml_mathjax_and_image_alt():
    katex = ('<span class="katex"><span class="katex-mathml"><math><semantics><mrow><mi>E</mi></mrow>'
             '<annotation encoding="application/x-tex">E = mc^2</annotation></semantics></math></span>'
             '<span class="katex-html" aria-hidden="true">E=mc2</span></span>')
    mathjax = '<script type="math/tex; mode=display">\\sum_{i=1}^n i = \\frac{n(n+1)}{2}</script>'
    image = '<img class="math" src="f.png" alt="\\sqrt{a^2 + b^2}">'
    result = extract(page(ARTICLE + f"<p>Energy {katex} and the sum {mathjax} and {image} hold.</p>"))
    assert "E = mc^2" in result.text and "E=mc2" not in result.text
    assert "\\sum_{i=1}^n i = \\frac{n(n+1)}{2}" in result.text
    assert "\\sqrt{a^2 + b^2}" in result.text
    assert result.n_math == 3


def test_image_alt_text_kept_but_not_file_names():
    result = extract(page(ARTICLE + '<p>A chart: <img src="c.png" alt="Sales doubled in 2023"> and '
                          '<img src="d.png" alt="../_images/d.png"> end of the figure paragraph text.</p>'))
    assert "Sales doubled in 2023" in result.text
    assert "_images" not in result.text


def test_markdown_markers_stripped_outside_code():
    md = ("<p>## Heading text</p><p>Some **bold** and *italic* and `code` and a [link](http://x.org) here, "
          "long enough to be a real paragraph of the article.</p><p>- bullet item of the list</p>")
    result = extract(page(ARTICLE + md))
    assert result.domain == "general"
    assert "Heading text" in result.text and "##" not in result.text
    assert "Some bold and italic and code and a link here" in result.text
    assert "bullet item" in result.text and "- bullet" not in result.text
    assert strip_markdown("> quoted **text**") == "quoted text"
    assert strip_markdown("---") == ""
    assert strip_markdown("2 * 3 * 4 = 24") == "2 * 3 * 4 = 24"


CODE_PAGE = ARTICLE + (
    "<p>## Calling the constructor</p>"
    "<p>Override <code>__init__</code> and <code>__repr__</code>; pass <code>*args</code> and "
    "<code>**kwargs</code> on to the base class, as in the example.</p>"
    "<pre># a comment\n**kept** in code\nclass A(B):\n    def __init__(self, *args, **kwargs):\n"
    "        super().__init__(*args, **kwargs)</pre><p>See <code>object.__new__()</code>.</p>"
)


def test_code_page_routed_before_extraction_keeps_identifiers():
    routed = extract(page(CODE_PAGE))
    assert routed.domain == "code" and routed.n_code_blocks == 1
    assert "Override __init__ and __repr__; pass *args and **kwargs on to the base class" in routed.text
    assert "Calling the constructor" in routed.text and "##" not in routed.text  # line markers still go
    assert "# a comment\n**kept** in code\nclass A(B):\n    def __init__(self, *args, **kwargs):" in routed.text
    general = extract(page(CODE_PAGE), PageRoutingConfig(enabled=False))
    assert general.domain == "general"
    assert "__init__ and __repr__" not in general.text  # the general pipeline reads them as __bold__


def test_math_page_routed_and_tex_operators_survive():
    adjoint = "(AB)^{*} = B^{*}A^{*}"
    mathjax = f'<script type="math/tex">{adjoint}</script>'
    html = page(ARTICLE + f"<p>For the adjoint, {mathjax} holds, and {mathjax.replace('B', 'C')} too.</p>")
    routed = extract(html)
    assert routed.domain == "math" and routed.n_math == 2
    assert adjoint in routed.text
    assert adjoint not in extract(html, PageRoutingConfig(enabled=False)).text  # *...* read as italics


def test_page_router_thresholds():
    cfg = PageRoutingConfig()
    assert page_domain({"math": 1, "img-math": 1}, 5000, cfg) == "math"
    assert page_domain({"tex": 1}, 5000, cfg) == "general"
    assert page_domain({"pre": 1, "code": 4}, 5000, cfg) == "code"  # 1 code element per 1000 chars
    assert page_domain({"pre": 1}, 5000, cfg) == "general"
    assert page_domain({"code": 40}, 5000, cfg) == "general"  # no code block at all
    assert page_domain({"math": 9}, 5000, PageRoutingConfig(enabled=False)) == "general"


def test_normalize_url():
    assert normalize_url("HTTPS://Example.ORG:443/a?b=1#frag") == "https://example.org/a?b=1"
    assert url_id("https://example.org") == url_id("https://EXAMPLE.org/#top")


def _crawl(tmp_path, records: list[bytes], extra: bytes = b"") -> dict:
    crawl = tmp_path / "crawl"
    with WarcShardWriter(crawl / "warc", shard_bytes=1 << 20) as writer:
        for r in records:
            writer.write(r)
    if extra:
        (crawl / "warc" / "zz-bad.warc.gz").write_bytes(extra)
    return {"raw_crawl": crawl}


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.slow)])
def test_stage_dedups_urls_keeping_newest_and_counts_drops(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("embedded_ray")
    old = page("<p>" + "Old version of the story, superseded later, with enough words. " * 5 + "</p>")
    new = page("<p>" + "New version of the story, the latest capture, with enough words. " * 5 + "</p>")
    other = page("<p>" + "A different page about another subject entirely, long enough. " * 5 + "</p>")
    records = [
        response_record("https://example.org/story", "2024-05-01T00:00:00Z", new.encode()),
        response_record("https://example.org/story#comments", "2024-01-01T00:00:00Z", old.encode()),
        response_record("https://example.org/other", "2024-02-01T00:00:00Z", other.encode()),
        response_record("https://example.org/empty", "2024-02-01T00:00:00Z", page("<p>Too short.</p>").encode()),
        response_record("https://example.org/img.png", "2024-02-01T00:00:00Z", b"\x89PNG", "image/png"),
        response_record("https://example.org/latin", "2024-02-01T00:00:00Z",
                        page("<p>" + "Über Straße, café, naïve façade; déjà vu again. " * 6 + "</p>").encode("latin-1"),
                        "text/html; charset=iso-8859-1"),
        response_record("https://example.org/deep", "2024-02-01T00:00:00Z",
                        ("<div>" * 5000 + "Nested text far down the tree, long enough. " * 5
                         + "</div>" * 5000).encode()),
    ]
    bad = gzip.compress(records[2])[:-30]  # a truncated copy in its own shard
    meta = run_extracted_docs(ExtractConfig(executor=executor, min_text_chars=100), _crawl(tmp_path, records, bad),
                              tmp_path / "out", StageContext(log=lambda m: None))
    table = pq.read_table(tmp_path / "out" / "docs.parquet").to_pylist()
    by_url = {row["url"]: row for row in table}
    assert set(by_url) == {"https://example.org/story", "https://example.org/other", "https://example.org/latin"}
    assert "New version" in by_url["https://example.org/story"]["text"]
    assert by_url["https://example.org/story"]["date"] == "2024-05-01T00:00:00+00:00"
    assert "Über Straße, café" in by_url["https://example.org/latin"]["text"]
    assert by_url["https://example.org/other"]["id"] == url_id("https://example.org/other")
    assert by_url["https://example.org/other"]["source"] == "example.org"
    assert list(table[0]) == ["id", "url", "date", "source", "title", "text", "n_code_blocks", "n_math", "page_domain",
                              "language", "language_score"]
    assert (by_url["https://example.org/story"]["language"] == "en"
            and by_url["https://example.org/latin"]["language"] != "en")
    assert meta["languages"]["en"] == 2
    assert {row["page_domain"] for row in table} == {"general"}
    assert meta["page_domains"] == {"general": 3}
    drops = meta["skipped_or_dropped"]
    assert drops["duplicate_url_older_capture"] == 1
    assert drops["text_too_short"] == 1
    assert drops["nesting_too_deep"] == 1
    assert drops["non_html_content_type"] == 1
    assert drops.get("truncated_record", 0) + drops.get("corrupt_stream", 0) == 1
    assert meta["pages_in"] == 6 and meta["docs_out"] == 3
