"""The page tree main-content extraction works on, built from lexbor's HTML5 parse (recipe: "Web
Data Curation", custom parser).

lexbor (through selectolax) parses the page in C with the HTML5 rules: error recovery, implied
end tags, raw-text elements, entities decoded. One Python walk over its nodes then builds a small
tree of ``Element`` objects (``__slots__``) holding only what extraction reads, with the text
statistics accumulated as each element closes, so no second pass is needed:

- subtrees a ``judge`` drops (and ``DROP_TAGS``: scripts, styles, forms, media) are never
  entered, so their nodes cost nothing;
- kept inline formatting tags (``TRANSPARENT_TAGS``: links, spans, emphasis) get no element:
  their text joins the enclosing block, text inside a link adds to its ``link_len``;
- MathJax's ``<script type="math/tex">`` is the one script kept: it becomes a ``tex`` element
  whose text is the formula's TeX.

Only ``<body>`` is walked (the head is metadata). ``parse`` returns a ``Page``: the tree, the
``<title>``, and counts of the code and math markup in the kept subtrees, which the page router
(``factory.data.page_routing``) reads before the text is rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

# Elements whose subtree is never content: never entered.
DROP_TAGS = frozenset({
    "script", "style", "noscript", "template", "iframe", "object", "embed", "canvas", "svg", "select",
    "option", "button", "input", "textarea", "head", "title", "link", "meta", "base", "audio", "video",
    "map", "dialog", "menu",
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
# Shortest inline text that makes a block a paragraph for scoring.
PARA_MIN_CHARS = 25
# Share of its own score a paragraph keeps: text written straight into a <div> with <br>s is its
# own container.
SELF_SCORE = 1.0
# lexbor's tag ids of the non-element nodes the walk meets (reading the id costs less than the name)
_TEXT_ID, _COMMENT_ID = 2, 4
_MATH_SCRIPT_TYPE = "math/tex"
# Markup counted for the page router: code elements and formulas ("img-math": formula images).
COUNTED_TAGS = frozenset({"pre", "code", "kbd", "samp", "math"})
_MATH_IMG = re.compile(r"math|latex|tex|formula|equation", re.I)

KEEP, FLAG, DROP = 0, 1, 2  # verdicts of a parse ``judge`` on a start tag
Attrs = dict[str, "str | None"]  # lexbor's attributes; a bare attribute (``hidden``) maps to None
_NO_ATTRS: Attrs = {}


class Element:
    """An element with its children (``Element`` or ``str``) and the text statistics of its
    subtree, filled in when it closes: ``text_len`` (chars of its trimmed text runs), ``link_len``
    (of that, inside ``<a>``), ``commas``, ``inline_len``/``inline_commas`` (text not inside a
    block child: this element's own paragraph), ``n_para`` (paragraphs in the subtree), ``good`` (their
    text outside links) and ``score`` (Readability score from child and grandchild paragraphs)."""

    __slots__ = ("tag", "attrs", "children", "parent", "text_len", "link_len", "commas",
                 "inline_len", "inline_commas", "score", "n_para", "good", "flag")

    def __init__(self, tag: str, attrs: Attrs, parent: Element | None):
        self.tag = tag
        self.attrs = attrs
        self.children: list[Element | str] = []
        self.parent = parent
        self.text_len = self.link_len = self.commas = 0
        self.inline_len = self.inline_commas = 0
        self.score = 0.0
        self.n_para = 0
        self.good = 0.0
        self.flag = 0  # the judge's verdict (FLAG marks likely boilerplate); 0 = KEEP

    def get(self, name: str, default: str = "") -> str:
        value = self.attrs.get(name)
        return default if value is None else value

    def iter(self):
        """Elements of the subtree in document order (self first)."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(c for c in reversed(node.children) if type(c) is Element)

    def add_text(self, text: str, in_link: bool) -> None:
        size = len(text.strip())
        commas = text.count(",")
        self.children.append(text)
        self.text_len += size
        self.inline_len += size
        self.commas += commas
        self.inline_commas += commas
        if in_link:
            self.link_len += size

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs}>"


@dataclass
class Page:
    """A parsed page: its ``<body>`` tree under a synthetic ``#root``, its whitespace-normalized
    ``<title>`` and the count of each ``COUNTED_TAGS`` kind, ``tex`` and ``img-math`` kept."""

    root: Element
    title: str
    markup: dict[str, int]


def is_formula_image(attrs: Attrs) -> bool:
    """An ``<img>`` showing a formula: TeX in its ``alt``, or math named in its class or file."""
    if "\\" in (attrs.get("alt") or ""):
        return True
    return bool(_MATH_IMG.search(f"{attrs.get('class') or ''} {attrs.get('src') or ''}"))


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


def parse(html: str, judge: Callable[[str, Attrs], int] | None = None) -> Page:
    """Parse ``html`` into a ``Page``.

    ``judge(tag, attrs)`` rules on each element outside ``<pre>``: ``DROP`` skips its whole
    subtree (its text is counted nowhere), ``FLAG`` keeps it with ``flag`` set, ``KEEP`` keeps it."""
    tree = LexborHTMLParser(html)
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else ""
    root = Element("#root", _NO_ATTRS, None)
    body = tree.body
    node = body.child if body is not None else None
    cur = root
    in_link = False
    in_pre = 0  # open <pre> elements: whitespace is content there and the judge is not asked
    bare: dict[str, int] = {}  # verdicts of attribute-less elements by tag
    markup: dict[str, int] = {}
    # Where to resume when a subtree ends: (next sibling, element opened for the subtree or None,
    # enclosing element, in_link, in_pre) as they were before entering it.
    resume: list[tuple] = []
    while True:
        if node is None:
            if not resume:
                break
            node, opened, cur, in_link, in_pre = resume.pop()
            if opened is not None:
                _close(opened)
            continue
        tag_id = node.tag_id
        if tag_id == _TEXT_ID:
            if node.is_empty_text_node:
                # whitespace separates words across inline tags ("<b>a</b> <i>b</i>")
                cur.children.append(node.text_content if in_pre else " ")
            else:
                cur.add_text(node.text_content, in_link)
            node = node.next
            continue
        tag = node.tag
        if tag_id == _COMMENT_ID or not tag or tag[0] == "-":  # comment, doctype, processing instruction
            node = node.next
            continue
        attrs = node.attributes or _NO_ATTRS
        if tag == "script":
            if _MATH_SCRIPT_TYPE in (attrs.get("type") or ""):
                tex = Element("tex", attrs, cur)
                tex.add_text(node.text(), False)
                cur.children.append(tex)
                _close(tex)
                markup["tex"] = markup.get("tex", 0) + 1
            node = node.next
            continue
        if in_pre:
            verdict = KEEP
        elif tag in DROP_TAGS:
            verdict = DROP
        elif judge is None:
            verdict = KEEP
        elif attrs:
            verdict = judge(tag, attrs)
        else:  # a bare element: its verdict depends on the tag only
            verdict = bare.get(tag, -1)
            if verdict < 0:
                verdict = bare[tag] = judge(tag, attrs)
        if verdict == DROP:
            node = node.next
            continue
        if tag in COUNTED_TAGS:
            markup[tag] = markup.get(tag, 0) + 1
        elif tag == "img" and attrs and is_formula_image(attrs):
            markup["img-math"] = markup.get("img-math", 0) + 1
        if verdict == KEEP and tag in TRANSPARENT_TAGS:
            resume.append((node.next, None, cur, in_link, in_pre))
            in_link = in_link or tag == "a"
        else:
            el = Element(tag, attrs, cur)
            el.flag = verdict
            cur.children.append(el)
            resume.append((node.next, el, cur, in_link, in_pre))
            cur = el
            if tag == "pre":
                in_pre += 1
        node = node.child
    return Page(root, title, markup)
