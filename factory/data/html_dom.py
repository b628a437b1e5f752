"""A small, fast HTML tree for main-content extraction (recipe: "Web Data Curation", custom parser).

Why our own: extraction needs one pass over every element with a few counters (text length,
link text, commas, paragraph scores); lexbor's Python node wrappers cost ~5 µs per node access
here, more than all of that work. So the page is split into tokens by one C-level regex and
built into ``Element`` objects with ``__slots__`` in a single Python loop; the statistics are
accumulated as each element closes, so no second pass is needed. Kept inline formatting tags
(links, spans, emphasis) get no element at all: their text joins the enclosing block.

What it handles of HTML's rules: the head is skipped; raw-text elements (``script``, ``style``,
..., and inline ``svg``) are cut out before tokenizing, since their bodies are not markup; void
elements; implied end tags for ``p``/``li``/``td``/...; end tags closing whatever is still open
inside them. Comments, doctypes and processing instructions are dropped. MathJax's
``<script type="math/tex">`` is the one script kept: it becomes a ``tex`` element whose text is
the formula's TeX.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable

# Elements whose subtree is never content: dropped while parsing.
DROP_TAGS = frozenset({
    "script", "style", "noscript", "template", "iframe", "object", "embed", "canvas", "svg", "select",
    "option", "button", "input", "textarea", "head", "title", "link", "meta", "base", "audio", "video",
    "map", "dialog", "menu",
})
VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "image",
})
# Inline elements: their text belongs to the enclosing block's paragraph.
INLINE_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark",
    "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "tt", "u", "var", "br", "img",
    "wbr", "strike", "del", "ins", "label", "nobr", "tex", "math", "big", "acronym",
})
# Inline formatting without a structural role: kept ones get no element of their own.
TRANSPARENT_TAGS = frozenset({
    "a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd", "mark",
    "q", "s", "samp", "small", "span", "strong", "time", "tt", "u", "var", "strike", "del", "ins",
    "label", "nobr", "big", "acronym",
})
# An open element of the key's kind is closed by a new start tag of one of these kinds.
_IMPLIED_END = {
    "p": frozenset({"p", "div", "ul", "ol", "dl", "pre", "table", "blockquote", "h1", "h2", "h3", "h4", "h5",
                    "h6", "section", "article", "aside", "header", "footer", "nav", "form", "figure", "hr",
                    "main", "address", "fieldset", "details", "li", "dd", "dt"}),
    "li": frozenset({"li"}), "dt": frozenset({"dt", "dd"}), "dd": frozenset({"dt", "dd"}),
    "td": frozenset({"td", "th", "tr"}), "th": frozenset({"td", "th", "tr"}), "tr": frozenset({"tr"}),
}
# Shortest inline text that makes a block a paragraph for scoring.
PARA_MIN_CHARS = 25
# Share of its own score a paragraph keeps: text written straight into a <div> with <br>s is its
# own container.
SELF_SCORE = 1.0
# Raw-text elements, whose bodies are not markup; inline <svg> (icons: hundreds of path tags,
# never text) is cut the same way.
_RAW_NAMES = ("script", "style", "noscript", "template", "textarea", "title", "xmp", "svg")
# "<" outside the case-insensitive group: the regex engine scans for it as a literal prefix.
_RAW_START = re.compile(r"<(?i:(" + "|".join(_RAW_NAMES) + r"))(?=[\s>/])")
_RAW_END = {name: re.compile(rf"</(?i:{name})\s*>") for name in _RAW_NAMES}
_BODY_START = re.compile(r"<(?i:body)(?=[\s>])")
_MATH_TYPE = re.compile(r"\btype\s*=\s*[\"']?math/tex", re.I)
# A tag name, then attributes with quoted values that may contain '>'; split() keeps the groups.
_SPLIT = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9:_-]*)((?:[^>\"']+|\"[^\"]*\"|'[^']*')*)>|<!--.*?(?:-->|$)|<![^>]*>|<\?[^>]*>", re.S)
_ATTR = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")


class Element:
    """An element with its children (``Element`` or ``str``) and the text statistics of its
    subtree, filled in when it closes: ``text_len`` (chars of its trimmed text runs), ``link_len``
    (of that, inside ``<a>``), ``commas``, ``inline_len``/``inline_commas`` (text not inside a
    block child: this element's own paragraph), ``n_para`` (paragraphs in the subtree), ``good`` (their
    text outside links) and ``score`` (Readability score from child and grandchild paragraphs)."""

    __slots__ = ("tag", "attr_text", "children", "parent", "text_len", "link_len", "commas",
                 "inline_len", "inline_commas", "score", "n_para", "good", "flag")

    def __init__(self, tag: str, attr_text: str, parent: Element | None):
        self.tag = tag
        self.attr_text = attr_text
        self.children: list[Element | str] = []
        self.parent = parent
        self.text_len = self.link_len = self.commas = 0
        self.inline_len = self.inline_commas = 0
        self.score = 0.0
        self.n_para = 0
        self.good = 0.0
        self.flag = 0  # set by the extractor (boilerplate marks); 0 = none

    def attrs(self) -> dict[str, str]:
        out = {}
        for name, dq, sq, bare in _ATTR.findall(self.attr_text):
            out.setdefault(name.lower(), dq or sq or bare)
        return out

    def get(self, name: str, default: str = "") -> str:
        return self.attrs().get(name, default) if self.attr_text else default

    def iter(self):
        """Elements of the subtree in document order (self first)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(c for c in reversed(node.children) if type(c) is Element)

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attr_text.strip()[:60]}>"


def _close(node: Element) -> None:
    """Fold a closing element's statistics into its parent (called exactly once per element).
    A block element holding a paragraph (``inline_len >= PARA_MIN_CHARS``) scores as in
    Readability: 1 + its commas + one per 100 chars (at most 3), given whole to its parent and
    half to its grandparent, so the tightest container of the article's paragraphs wins."""
    parent = node.parent
    if parent is None:
        return
    if node.inline_len >= PARA_MIN_CHARS and node.tag not in INLINE_TAGS:
        para = 1.0 + node.inline_commas + min(node.inline_len / 100.0, 3.0)
        node.n_para += 1
        # paragraph text outside links: the "good" mass a content container gathers
        node.good += node.inline_len * max(0.0, 1.0 - node.link_len / max(node.text_len, 1))
        node.score += para * SELF_SCORE
        parent.score += para
        if parent.parent is not None:
            parent.parent.score += para / 2
    parent.text_len += node.text_len
    parent.commas += node.commas
    parent.link_len += node.text_len if node.tag == "a" else node.link_len
    parent.n_para += node.n_para
    parent.good += node.good
    if node.tag in INLINE_TAGS:
        parent.inline_len += node.inline_len
        parent.inline_commas += node.inline_commas


# Tag names as written -> lower case, for the common spellings (saves a str.lower per token).
_LOWER = {t: t for t in DROP_TAGS | VOID_TAGS | INLINE_TAGS | TRANSPARENT_TAGS | frozenset(
    "html body div p ul ol li dl dt dd table thead tbody tfoot tr td th pre h1 h2 h3 h4 h5 h6 section "
    "article aside header footer nav main figure figcaption blockquote form center address details "
    "summary caption picture".split())}
_LOWER.update({t.upper(): t for t in list(_LOWER)})

KEEP, FLAG, DROP = 0, 1, 2  # verdicts of a parse ``judge`` on a start tag


def parse(html: str, judge: Callable[[str, str], int] | None = None) -> Element:
    """Parse ``html`` into a tree rooted at a synthetic ``#root`` element.

    ``judge(tag, attr_text)`` rules on each start tag outside ``<pre>``: ``DROP`` skips its whole
    subtree (its text is counted nowhere), ``FLAG`` keeps it with ``flag`` set, ``KEEP`` keeps it.
    Kept inline formatting tags (``TRANSPARENT_TAGS``: links, spans, emphasis...) get no element:
    their text joins the enclosing element's (text inside a link adds to its ``link_len``), which
    keeps the tree, and the Python work per page, small."""
    parts = _SPLIT.split(_without_raw_text(html))
    root = Element("#root", "", None)
    cur = root
    stack = [root]
    drop_depth = 0  # > 0 while inside a dropped subtree: nesting of drop_tag
    drop_tag = ""
    in_pre = 0  # open <pre> elements: whitespace is content there
    link_owner: Element | None = None  # element holding the open transparent <a>, if any
    bare: dict[str, int] = {}  # verdicts of attribute-less start tags by name
    # parts = [text, (closing, tag, attrs, text)*]; a comment/doctype match has tag None
    it = iter(parts)
    lead = next(it)  # text before the first tag (a fragment without <html>)
    if lead.strip():
        root.children.append(lead)
        root.text_len = root.inline_len = len(lead.strip())
    for closing, tag, attr_text, text in zip(it, it, it, it):
        if tag is not None:
            tag = _LOWER.get(tag) or tag.lower()
            if drop_depth:
                if tag == drop_tag:
                    drop_depth += -1 if closing else (0 if tag in VOID_TAGS else 1)
                elif tag == "body" and drop_tag == "head":
                    drop_depth = 0  # </head> is optional: <body> ends it
            if drop_depth:
                pass
            elif closing:
                if cur.tag == tag and cur is not root:  # the common case: closes the open element
                    stack.pop()
                    if tag == "pre":
                        in_pre -= 1
                    if cur is link_owner:
                        link_owner = None
                    _close(cur)
                    cur = stack[-1]
                elif tag == "a":
                    link_owner = None
                elif tag not in TRANSPARENT_TAGS and tag not in VOID_TAGS:
                    # close up to the nearest open element of this tag, if any
                    for i in range(len(stack) - 2, 0, -1):
                        if stack[i].tag == tag:
                            while len(stack) > i:
                                popped = stack.pop()
                                if popped.tag == "pre":
                                    in_pre -= 1
                                if popped is link_owner:
                                    link_owner = None
                                _close(popped)
                            cur = stack[-1]
                            break
            else:
                if in_pre:
                    verdict = KEEP
                elif tag in DROP_TAGS:
                    verdict = DROP
                elif judge is None:
                    verdict = KEEP
                elif attr_text:
                    verdict = judge(tag, attr_text)
                else:  # a bare tag: its verdict depends on the name only
                    verdict = bare.get(tag, -1)
                    if verdict < 0:
                        verdict = bare[tag] = judge(tag, "")
                if verdict == DROP:
                    if tag not in VOID_TAGS and not attr_text.endswith("/"):
                        drop_depth, drop_tag = 1, tag
                elif verdict == KEEP and tag in TRANSPARENT_TAGS:
                    if tag == "a":
                        link_owner = cur  # a new <a> also ends an unclosed one
                else:
                    implied = _IMPLIED_END.get(cur.tag)
                    while implied is not None and tag in implied:
                        popped = stack.pop()
                        if popped.tag == "pre":
                            in_pre -= 1
                        if popped is link_owner:
                            link_owner = None
                        _close(popped)
                        cur = stack[-1]
                        implied = _IMPLIED_END.get(cur.tag)
                    el = Element(tag, attr_text, cur)
                    el.flag = verdict
                    cur.children.append(el)
                    if tag in VOID_TAGS or attr_text.endswith("/"):
                        _close(el)
                    else:
                        stack.append(el)
                        if tag == "pre":
                            in_pre += 1
                        cur = el
        if text and not drop_depth:
            if text.isspace():
                # whitespace separates words across inline tags ("<b>a</b> <i>b</i>")
                cur.children.append(text if in_pre else " ")
                continue
            size = len(text.strip())
            commas = text.count(",")
            cur.children.append(text)
            cur.text_len += size
            cur.inline_len += size
            cur.commas += commas
            cur.inline_commas += commas
            if link_owner is not None:
                cur.link_len += size
    while len(stack) > 1:
        _close(stack.pop())
    return root


def _without_raw_text(html: str) -> str:
    """``html`` without raw-text elements (script, style, ...), whose bodies may hold anything
    that looks like markup (``"<bo"+'dy>'`` in JavaScript); a MathJax ``script type=math/tex``
    becomes a ``<tex>`` element holding its TeX as text."""
    pieces = []
    # Everything before <body> is the head (metadata, scripts, styles): never content.
    body = _BODY_START.search(html)
    pos = body.start() if body else 0
    for m in _RAW_START.finditer(html, pos):
        if m.start() < pos:
            continue  # inside the previous raw element's body
        start_end = html.find(">", m.end())
        if start_end < 0:
            break
        name = m.group(1).lower()
        close = _RAW_END[name].search(html, start_end)
        body_end = close.start() if close else len(html)
        pieces.append(html[pos:m.start()])
        attrs = html[m.end():start_end]
        if name == "script" and _MATH_TYPE.search(attrs):
            pieces.append(f"<tex{attrs}>{html_lib.escape(html[start_end + 1:body_end], quote=False)}</tex>")
        pos = close.end() if close else len(html)
    pieces.append(html[pos:])
    return "".join(pieces)
