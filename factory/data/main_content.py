"""Main-content extraction: HTML page -> plain text of its content (recipe: "Web Data Curation":
a custom parser "optimizing for precision in boilerplate removal and content recall", keeping
math and code structure and image ``alt`` text, with all markdown markers removed).

How a page is reduced to its content:
1. Parse (``factory.data.html_dom``, on lexbor), dropping non-content subtrees outright (scripts,
   styles, forms, ``nav``, ``footer``, hidden elements, cookie/consent banners) and flagging likely
   boilerplate by tag (``header``, ``aside``) or by ``class``/``id``/``role`` words (sidebar,
   share, related, comments, ...). The page router (``factory.data.page_routing``) reads the
   code and math markup the parse counted and picks the general, code or math settings for the
   steps below.
2. Pick the content container as Readability does: every block holding a paragraph scores
   (1 + commas + length) for itself, its parent and, halved, its grandparent; the best score
   discounted by link density wins. It then grows to its parent while the parent adds mostly
   paragraph text (the other sections of one document), or to a declared main-content ancestor
   (``role=main``, ``itemprop=articleBody``); siblings that score like it, long plain paragraphs
   and same-class sections join it.
3. Render it as text: block elements become lines, flagged and link-dense blocks are skipped,
   ``<pre>`` is copied verbatim (indentation and line breaks kept), formulas become their TeX
   (MathML ``annotation``, MathJax ``script type=math/tex``, formula image ``alt``), images their
   ``alt`` text, and markdown markers are stripped from the prose lines. Prose lines that are
   chrome (the headline repeating the title, datelines, lone labels like "Advertisement") and
   repeated lines are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory.data.html_dom import DROP, FLAG, INLINE_TAGS, KEEP, Attrs, Element, is_formula_image, parse
from factory.data.page_routing import SETTINGS, PageRoutingConfig, page_domain

# Readability's sibling rule: a sibling of the best container joins it when it scores at least
# SIBLING_SHARE of the best (and SIBLING_MIN_SCORE), or is a paragraph of SIBLING_PARA_CHARS
# with under SIBLING_PARA_LINKS link text.
SIBLING_SHARE = 0.2
SIBLING_MIN_SCORE = 10.0
SIBLING_PARA_CHARS = 80
SIBLING_PARA_LINKS = 0.25
# The container grows to its parent while what the parent adds is at least CLIMB_GOOD_SHARE
# paragraph text (outside links) and at most CLIMB_MAX_EXTRA times the container's text.
CLIMB_GOOD_SHARE = 0.9
CLIMB_MAX_EXTRA = 3.0
# ... or, for documents (tables, lists, code between the paragraphs), while what it adds is at
# least CLIMB_DOC_GOOD_SHARE paragraph text in CLIMB_MIN_PARAS paragraphs or more, with at most
# CLIMB_LINK_SHARE link text.
CLIMB_DOC_GOOD_SHARE = 0.5
CLIMB_LINK_SHARE = 0.4
CLIMB_MIN_PARAS = 10
# A sibling of the container whose text is mostly link text is navigation, by the general
# pipeline's bar whatever the page's domain (blocks inside the container use their domain's).
SIBLING_LINK_DENSITY_MAX = SETTINGS["general"].link_density_max
# Link-dense blocks at least this long are still kept (a paragraph citing many sources).
LINK_BLOCK_KEEP_CHARS = 400

# A flagged block holding at least this share of the container's paragraph text is content
# (a page whose <body> class says "has-sidebar" is not a sidebar).
FLAGGED_KEEP_SHARE = 0.5

_SOFT_TAGS = frozenset({"header", "aside", "form", "figcaption"})
_HARD_TAGS = frozenset({"nav", "footer"})
# Words of class/id/role values (split at spaces, "-" and "_") that mark boilerplate blocks.
_BOILER_WORDS = frozenset("""
sidebar sidebars navbar nav navigation menu breadcrumb breadcrumbs footer header masthead share
sharing sharebar social related recommended recirc comments comment disqus banner advert
advertisement ads ad adslot dfp sponsor sponsored promo newsletter subscribe subscription signup
popup modal overlay widget widgets toolbar pagination pager skip tags taglist byline bio meta
caption credit credits print sr screenreader headerlink sphinxsidebar navheader navfooter toc
outbrain taboola trending popular paywall login signin rating reactions readmore topics keywords
complementary contentinfo search menubar dialog alert
""".split())
# Words that mark a subtree dropped outright: consent and cookie banners.
_DROP_WORDS = frozenset("cookie cookies consent gdpr onetrust cookiebanner".split())
# Elements whose id is a slug of their heading ("manifest-related-options"), not a role.
_SLUG_ID_TAGS = frozenset({"section", "h1", "h2", "h3", "h4", "h5", "h6"})
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.I)
_BLOCK_BREAK = frozenset({"br"})
_CELL_TAGS = frozenset({"td", "th"})
_FILENAME_ALT = re.compile(r"^[\w./-]+\.(?:png|jpe?g|gif|svg|webp)$|^(?:https?:)?//", re.I)

# Lines of at most this many words may be chrome (headline, dateline, label): see _chrome_line.
CHROME_LINE_WORDS = 16
_MONTH = (r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?")
_DATELINE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[/.]\d{1,2}[/.]\d{2,4}\b|\b\d{1,2}:\d{2}\s*(?:[ap]\.?m\.?)?\b"
    rf"|\b{_MONTH}\s+\d{{1,2}},?\s+\d{{4}}\b|\b\d{{1,2}}\s+{_MONTH}\s+\d{{4}}\b",
    re.I,
)
_LABEL_WORDS = frozenset("""
advertisement advert ad ads sponsored comments comment share tweet print email image photo video
related loading close menu reply subscribe more read next previous back top home login
""".split())
# Alt texts that name the medium, not the content.
_GENERIC_ALT = frozenset("image photo picture img icon logo thumbnail advert advertisement banner".split())

# Markdown markers in prose lines (never applied inside <pre> or formulas).
_MD_LINE = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s?|[-*+]\s+(?=\S))")
_MD_RULE = re.compile(r"^\s*(?:(?:[-*_]\s*){3,}|(?:`{3,}|~{3,}).*)$")
_MD_LINKS = [(re.compile(r"!?\[([^\]\n]*)\]\([^)\s]*(?:\s+\"[^\"]*\")?\)"), r"\1")]  # [text](url), ![alt](src)
_MD_INLINE = [
    *_MD_LINKS,
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),  # **bold**, __bold__
    (re.compile(r"(?<![\w*])\*(?=[^\s*])([^*\n]+?)(?<=[^\s*])\*(?![\w*])"), r"\1"),  # *italic*
    (re.compile(r"(?<![\w`])`([^`\n]+)`(?![\w`])"), r"\1"),  # `code`
]


@dataclass(frozen=True)
class Extraction:
    """What the extractor recovered from a page."""

    text: str
    title: str
    n_code_blocks: int
    n_math: int
    domain: str  # the extraction settings the page router chose: general, code or math


def _judge(tag: str, attrs: Attrs) -> int:
    """Parse verdict on an element: DROP non-content subtrees, FLAG likely boilerplate, else KEEP."""
    if tag in _HARD_TAGS:
        return DROP
    verdict = FLAG if tag in _SOFT_TAGS else KEEP
    if not _JUDGED_ATTRS.isdisjoint(attrs):
        # a section's or heading's id is a slug of its heading ("manifest-related-options"), not a role
        key = (attrs.get("class"), None if tag in _SLUG_ID_TAGS else attrs.get("id"), attrs.get("role"),
               attrs.get("style"), attrs.get("aria-hidden"), "hidden" in attrs)
        by_attrs = _ATTR_VERDICTS.get(key)
        if by_attrs is None:
            by_attrs = _attr_verdict(*key)
            if len(_ATTR_VERDICTS) >= ATTR_CACHE_SIZE:
                _ATTR_VERDICTS.clear()
            _ATTR_VERDICTS[key] = by_attrs
        if by_attrs > verdict:  # DROP > FLAG > KEEP
            verdict = by_attrs
    return verdict


def _attr_verdict(cls: str | None, id_: str | None, role: str | None, style: str | None,
                  aria_hidden: str | None, hidden: bool) -> int:
    if hidden or (aria_hidden or "").strip().lower() == "true" or (style and _HIDDEN_STYLE.search(style)):
        return DROP
    verdict = KEEP
    for value in (cls, id_, role):
        if not value:
            continue
        value = value.lower()
        if "katex-html" in value:
            return DROP
        words = value.replace("-", " ").replace("_", " ").split()
        if not _DROP_WORDS.isdisjoint(words):
            return DROP
        if not _BOILER_WORDS.isdisjoint(words):
            verdict = FLAG
    return verdict


# The attributes a verdict depends on (most elements, such as links with only an href, have none).
_JUDGED_ATTRS = frozenset({"class", "id", "role", "style", "aria-hidden", "hidden"})
# Verdicts by the attributes they depend on: class/id strings repeat across a page and across pages.
ATTR_CACHE_SIZE = 65536
_ATTR_VERDICTS: dict[tuple, int] = {}


def _adjusted(el: Element) -> float:
    return el.score * (1.0 - el.link_len / el.text_len) if el.text_len else 0.0


def _declares_main(el: Element) -> bool:
    """``role=main`` or ``itemprop=articleBody``: the page says this is its content."""
    return el.get("role").lower() == "main" or el.get("itemprop") == "articleBody"


def _container(root: Element) -> list[Element]:
    """The best-scoring paragraph container and the siblings that score like it."""
    best, best_value = None, 0.0
    stack = [root]
    while stack:  # only subtrees holding paragraphs can hold a scored element
        el = stack.pop()
        if el.score > 0:
            value = _adjusted(el)
            if value > best_value:
                best, best_value = el, value
        stack += [c for c in el.children if type(c) is Element and c.n_para]
    if best is None:
        return [root]
    # Climb while the enclosing element adds mostly paragraph text (sections of one document).
    while best.parent is not None and best.parent.parent is not None:
        up = best.parent
        extra = up.text_len - best.text_len
        added_good = up.good - best.good
        if extra > CLIMB_MAX_EXTRA * best.text_len or (extra and added_good < CLIMB_GOOD_SHARE * extra and (
                added_good < CLIMB_DOC_GOOD_SHARE * extra or up.link_len - best.link_len > CLIMB_LINK_SHARE * extra
                or up.n_para - best.n_para < CLIMB_MIN_PARAS)):
            break
        best = up
    # A declared main-content ancestor (role=main, itemprop=articleBody) is the container.
    up = best.parent
    while up is not None:
        if up.attrs and _declares_main(up):
            best = up
            break
        up = up.parent
    best_value = max(best_value, _adjusted(best))
    parent = best.parent
    if parent is None:
        return [best]
    threshold = max(SIBLING_MIN_SCORE, SIBLING_SHARE * best_value)
    chosen = []
    best_class = best.get("class")
    for sib in parent.children:
        if type(sib) is str:
            continue
        if sib is best or _adjusted(sib) >= threshold or (
            sib.inline_len > SIBLING_PARA_CHARS and sib.link_len < SIBLING_PARA_LINKS * sib.text_len
        ) or (
            # a sibling of the same class with paragraphs: the next section of the same document
            best_class and sib.n_para and sib.tag == best.tag and not sib.flag
            and sib.link_len < SIBLING_LINK_DENSITY_MAX * sib.text_len and sib.get("class") == best_class
        ):
            chosen.append(sib)
    return chosen


class _Renderer:
    """Collects the container's text as lines; code blocks and formulas are counted."""

    def __init__(self, keep_flagged: float, link_density_max: float) -> None:
        self.keep_flagged = keep_flagged  # a flagged block holding this much paragraph text stays
        self.link_density_max = link_density_max
        self.lines: list[tuple[bool, str]] = []  # (verbatim, text)
        self.parts: list[str] = []
        self.n_code = 0
        self.n_math = 0

    def flush(self) -> None:
        if self.parts:
            self.lines.append((False, "".join(self.parts)))
            self.parts.clear()

    def block(self, el: Element) -> None:
        parts = self.parts
        for child in el.children:
            if type(child) is str:
                parts.append(child)
                continue
            tag = child.tag
            if child.flag and child.good < self.keep_flagged:
                continue
            if tag == "pre":
                self.flush()
                self.lines.append((True, _verbatim(child)))
                self.n_code += 1
            elif tag == "tex" or tag == "math":
                tex = _tex(child)
                if tex:
                    self.n_math += 1
                    parts.append(f" {tex} ")
            elif tag == "img":
                alt = child.get("alt").strip()
                if alt and not _FILENAME_ALT.match(alt) and alt.lower() not in _GENERIC_ALT:
                    if is_formula_image(child.attrs):
                        self.n_math += 1
                    parts.append(f" {alt} ")
            elif tag in _BLOCK_BREAK:
                self.flush()
            elif tag in INLINE_TAGS:
                self.block(child)
            else:
                if (child.text_len and child.link_len > self.link_density_max * child.text_len
                        and child.text_len < LINK_BLOCK_KEEP_CHARS):
                    continue
                if tag in _CELL_TAGS:
                    parts.append(" ")
                    self.block(child)
                    parts.append(" ")
                else:
                    self.flush()
                    self.block(child)
                    self.flush()


def _verbatim(el: Element) -> str:
    """Text of a <pre> exactly as displayed, <br> as newlines (the parser has decoded entities
    and dropped the newline right after ``<pre>``, which HTML ignores)."""
    out: list[str] = []
    stack: list[Element | str] = [el]
    while stack:
        node = stack.pop()
        if type(node) is str:
            out.append(node)
        elif node.tag == "br":
            out.append("\n")
        elif node.tag == "img":
            out.append(node.get("alt"))
        else:
            stack.extend(reversed(node.children))
    return "".join(out).rstrip("\n")


def _tex(el: Element) -> str:
    """TeX of a formula: a MathJax script's body, a MathML ``annotation`` in TeX, else MathML text."""
    if el.tag == "tex":
        return "".join(c for c in el.children if type(c) is str).strip()
    fallback = []
    for node in el.iter():
        if node.tag == "annotation" and node.get("encoding").lower() == "application/x-tex":
            return "".join(c for c in node.children if type(c) is str).strip()
        if node.tag != "annotation" and node.tag != "annotation-xml":
            fallback += [c for c in node.children if type(c) is str]
    return " ".join(" ".join(fallback).split())


def strip_markdown(line: str, emphasis: bool = True) -> str:
    """A prose line without markdown markers: headings, quotes, bullets, links and, with
    ``emphasis``, emphasis and inline-code markers (off on code and math pages, where ``__init__``,
    ``*args`` and TeX's ``*`` are content)."""
    if _MD_RULE.match(line):
        return ""
    line = _MD_LINE.sub("", line, count=1)
    if "*" in line or "_" in line or "[" in line or "`" in line:
        for pattern, repl in (_MD_INLINE if emphasis else _MD_LINKS):
            line = pattern.sub(repl, line)
    return line


def _chrome_line(line: str, title_key: str) -> bool:
    """A line that is page chrome rather than content: the headline (already the page title), a
    dateline or byline, or a lone boilerplate label ("Advertisement", "Comments")."""
    words = line.split()
    if len(words) <= CHROME_LINE_WORDS:
        low = line.lower()
        if len(words) >= 2 and low in title_key:
            return True
        if _DATELINE.search(line) and not line.endswith((".", "?", "!", ":")):
            return True
        if len(words) <= 3 and _LABEL_WORDS.issuperset(w.strip(".:!()|").lower() for w in words):
            return True
    return False


DEFAULT_ROUTING = PageRoutingConfig()


def extract(html: str, routing: PageRoutingConfig = DEFAULT_ROUTING) -> Extraction:
    """Main content of an HTML page as plain text with its code blocks and formulas, rendered
    with the settings of the domain ``routing`` picks from the page's markup."""
    page = parse(html, _judge)
    domain = page_domain(page.markup, page.root.text_len, routing)
    settings = SETTINGS[domain]
    chosen = _container(page.root)
    renderer = _Renderer(FLAGGED_KEEP_SHARE * sum(el.good for el in chosen), settings.link_density_max)
    for el in chosen:
        renderer.flush()
        renderer.block(el)
    renderer.flush()
    title_key = page.title.lower()  # the parse normalized its whitespace
    out: list[str] = []
    seen: set[str] = set()
    for verbatim, text in renderer.lines:
        if verbatim:
            if text.strip():
                out.append(text)
            continue
        text = strip_markdown(" ".join(text.split()), settings.strip_emphasis).strip()
        if text and text not in seen and not _chrome_line(text, title_key):
            seen.add(text)  # a prose line repeated on a page is a caption, alt text or chrome
            out.append(text)
    return Extraction("\n".join(out), page.title, renderer.n_code, renderer.n_math, domain)
