"""A small, fast HTML tree for main-content extraction (recipe: "Web Data Curation", custom parser).

Why our own: extraction needs one pass over every element with a few counters (text length,
link text, commas, paragraph scores); lexbor's Python node wrappers cost ~5 µs per node access
here, more than all of that work. So the page is tokenized with one C-level regex and built into
``Element`` objects with ``__slots__`` in a single Python loop; the statistics are accumulated as
each element closes, so no second pass is needed.

What it handles of HTML's rules: void elements, raw-text elements (``script``/``style``/...: their
bodies are never parsed as markup), implied end tags for ``p``/``li``/``td``/... and end tags
closing whatever is still open inside them. Comments, doctypes and processing instructions are
dropped. MathJax's ``<script type="math/tex">`` is the one script kept: it becomes a ``tex``
element whose text is the formula's TeX.
"""

from __future__ import annotations

import re

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
# A tag name, then attributes with quoted values that may contain '>'.
_TOKEN = re.compile(
    r"<(/?)([a-zA-Z][a-zA-Z0-9:_-]*)((?:[^>\"']+|\"[^\"]*\"|'[^']*')*)>|<!--.*?(?:-->|$)|<![^>]*>|<\?[^>]*>",
    re.S,
)
_RAW_END = {tag: re.compile(rf"</{tag}\s*>", re.I) for tag in ("script", "style", "textarea", "title", "noscript", "template", "xmp")}
_MATH_SCRIPT = re.compile(r"\btype\s*=\s*[\"']?math/tex", re.I)
_ATTR = re.compile(r"([^\s=/>\"']+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+)))?")


class Element:
    """An element with its children (``Element`` or ``str``) and the text statistics of its
    subtree, filled in when it closes: ``text_len`` (non-space chars, roughly), ``link_len``
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


def parse(html: str, on_open=None) -> Element:
    """Parse ``html`` into a tree rooted at a synthetic ``#root`` element. ``on_open(el)`` may
    return True to drop an element's whole subtree (its text is then not counted anywhere)."""
    root = Element("#root", "", None)
    cur = root
    stack = [root]
    pos = 0
    n = len(html)
    drop_depth = 0  # > 0 while inside a dropped subtree: count nesting of the same tag
    drop_tag = ""
    in_pre = 0  # open <pre> elements: whitespace is content there
    while pos < n:
        m = _TOKEN.search(html, pos)
        if m is None:
            text, pos = html[pos:], n
        else:
            text = html[pos:m.start()]
            pos = m.end()
        if text and not drop_depth:
            stripped = len(text) - text.count(" ") - text.count("\n")
            if stripped > 0 or in_pre:
                cur.children.append(text)
                if stripped > 0:
                    c = text.count(",")
                    cur.text_len += stripped
                    cur.inline_len += stripped
                    cur.commas += c
                    cur.inline_commas += c
        if m is None:
            break
        tag = m.group(2)
        if tag is None:
            continue  # comment, doctype, processing instruction
        tag = tag.lower()
        closing = m.group(1) == "/"
        raw_end = None if closing else _RAW_END.get(tag)
        if raw_end is not None:
            # raw text: its body is never markup, whether or not we are dropping
            end = raw_end.search(html, pos)
            body_end = end.start() if end else n
            if not drop_depth and tag == "script" and _MATH_SCRIPT.search(m.group(3)):
                tex = Element("tex", m.group(3), cur)
                tex.children.append(html[pos:body_end])
                cur.children.append(tex)
            pos = end.end() if end else n
            continue
        if drop_depth:
            if tag == drop_tag:
                drop_depth += -1 if closing else (0 if tag in VOID_TAGS else 1)
                continue
            if tag != "body" or drop_tag != "head":
                continue
            drop_depth = 0  # </head> is optional: <body> ends it
        if closing:
            if tag in _RAW_END or tag in VOID_TAGS:
                continue
            # close up to the nearest open element of this tag, if any
            for i in range(len(stack) - 1, 0, -1):
                if stack[i].tag == tag:
                    while len(stack) > i:
                        popped = stack.pop()
                        in_pre -= popped.tag == "pre"
                        _close(popped)
                    cur = stack[-1]
                    break
            continue
        attr_text = m.group(3)
        implied = _IMPLIED_END.get(cur.tag)
        while implied is not None and tag in implied:
            popped = stack.pop()
            in_pre -= popped.tag == "pre"
            _close(popped)
            cur = stack[-1]
            implied = _IMPLIED_END.get(cur.tag)
        el = Element(tag, attr_text, cur)
        if tag in DROP_TAGS or (on_open is not None and on_open(el)):
            if tag not in VOID_TAGS and not attr_text.rstrip().endswith("/"):
                drop_depth, drop_tag = 1, tag
            continue
        cur.children.append(el)
        if tag in VOID_TAGS or attr_text.endswith("/"):
            _close(el)
            continue
        stack.append(el)
        in_pre += tag == "pre"
        cur = el
    while len(stack) > 1:
        _close(stack.pop())
    return root
