"""Code and math preservation test set, built from real documentation (recipe: "Web Data Curation":
keep the structure of math and code content; formulas as TeX, also from image ``alt`` text).

Code: Python 3.11 documentation pages (python3.11-doc) that hold ``<pre>`` blocks. The truth of a
block is its displayed text as lexbor (resiliparse's HTML parser, independent of ours) reads it;
it counts as recovered when it appears byte-exact (indentation and line breaks included) in the
extracted text. The same pages' inline code in prose (``<p> ... <code>``: ``__init__``, ``*args``,
``**kwargs``) counts as recovered when its text appears verbatim (whitespace-normalized): the
markdown-marker stripping of prose must not eat the underscores and stars of identifiers.

Math: the display formulas (``.. math::``) of the PyTorch sources' docstrings installed in this
environment (torch/nn/modules), each docstring served as a documentation page whose formulas use,
in turn, the three encodings of the web: KaTeX (MathML with a TeX ``annotation`` beside an
aria-hidden rendering), MathJax (``script type="math/tex"``) and formula images (``alt`` = TeX).
A formula counts as recovered when its TeX (whitespace-normalized) appears in the text.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from factory.data.sample_crawl import PYTHON_DOCS_DIR

_MATH_DIRECTIVE = re.compile(r"^(\s*)\.\. math::\s*$")
_ENCODINGS = ("katex", "mathjax", "image")


@dataclass(frozen=True)
class Case:
    html: str
    code_blocks: tuple[str, ...]
    formulas: tuple[str, ...]
    inline_code: tuple[str, ...] = ()


def _code_texts(page: bytes) -> tuple[list[str], list[str]]:
    """(``<pre>`` blocks as displayed, inline ``<code>`` of prose paragraphs, whitespace-normalized)."""
    from resiliparse.parse.html import HTMLTree

    tree = HTMLTree.parse_from_bytes(page, "utf-8")
    blocks = []
    for pre in tree.body.query_selector_all("pre"):
        text = pre.text.strip("\n")
        if text.strip():
            blocks.append(text)
    inline = [_norm(code.text) for code in tree.body.query_selector_all("p code")]
    return blocks, [c for c in inline if c]


def code_cases(max_pages: int) -> list[Case]:
    if not PYTHON_DOCS_DIR.is_dir():
        return []
    cases = []
    for path in sorted(PYTHON_DOCS_DIR.rglob("*.html"), key=lambda p: hashlib.sha1(str(p).encode()).hexdigest()):
        page = path.read_bytes()
        if b"<pre" not in page:
            continue
        blocks, inline = _code_texts(page)
        cases.append(Case(page.decode("utf-8"), tuple(blocks), (), tuple(inline)))
        if len(cases) >= max_pages:
            break
    return cases


def _docstring_formulas(source: str) -> list[tuple[list[str], str]]:
    """[(prose lines before the formula, TeX)] of every ``.. math::`` block in a source file."""
    lines = source.splitlines()
    out = []
    prose: list[str] = []
    i = 0
    while i < len(lines):
        m = _MATH_DIRECTIVE.match(lines[i])
        if not m:
            stripped = lines[i].strip()
            for quote in ('r"""', '"""'):
                if stripped.startswith(quote):
                    stripped = stripped[len(quote):].strip()
                    break
            if stripped and not stripped.startswith(("..", ">>>", "#", "def ", "class ", "@", "return ", '"""')):
                prose.append(stripped)
            i += 1
            continue
        indent = len(m.group(1))
        i += 1
        tex_lines = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
            tex_lines.append(lines[i].strip())
            i += 1
        tex = " ".join(t for t in tex_lines if t)
        if tex and not tex.startswith(":"):
            out.append((prose[-6:], tex))
        prose = []
    return out


def _formula_html(tex: str, encoding: str) -> str:
    escaped = html.escape(tex, quote=True)
    if encoding == "katex":
        return (f'<span class="katex-display"><span class="katex"><span class="katex-mathml"><math '
                f'xmlns="http://www.w3.org/1998/Math/MathML" display="block"><semantics>'
                f'<mrow><mi>{escaped[:1]}</mi></mrow>'
                f'<annotation encoding="application/x-tex">{escaped}</annotation></semantics></math></span>'
                f'<span class="katex-html" aria-hidden="true"><span class="base">{escaped}</span></span></span></span>')
    if encoding == "mathjax":
        return f'<script type="math/tex; mode=display">{tex}</script>'  # raw text, as MathJax pages hold it
    name = hashlib.sha1(tex.encode()).hexdigest()
    return f'<img class="math" src="../_images/math/{name}.png" alt="{escaped}"/>'


def math_cases() -> list[Case]:
    try:
        import importlib.util

        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    modules = Path(next(iter(spec.submodule_search_locations))) / "nn" / "modules"
    cases = []
    n = 0
    for path in sorted(modules.glob("*.py")):
        found = _docstring_formulas(path.read_text(encoding="utf-8"))
        if not found:
            continue
        body = []
        for prose, tex in found:
            body.append(f"<p>{html.escape(' '.join(prose))}</p>")
            body.append(f'<div class="math">{_formula_html(tex, _ENCODINGS[n % len(_ENCODINGS)])}</div>')
            n += 1
        title = f"torch.nn.modules.{path.stem}"
        page = (f"<!DOCTYPE html><html><head><title>{title}</title></head><body>"
                f'<nav class="navbar"><a href="../index.html">PyTorch docs</a> <a href="../nn.html">torch.nn</a></nav>'
                f'<div class="sidebar" role="navigation"><ul><li><a href="#">{title}</a></li></ul></div>'
                f'<main><article role="main"><h1>{title}</h1>{"".join(body)}</article></main>'
                f'<footer>© PyTorch Contributors. Built with Sphinx.</footer></body></html>')
        cases.append(Case(page, (), tuple(tex for _, tex in found)))
    return cases


def build_cases(max_pages: int) -> list[Case]:
    return code_cases(max_pages) + math_cases()


def _norm(text: str) -> str:
    return " ".join(text.split())


def preservation(fn: Callable[[str], str], cases: list[Case]) -> dict[str, float]:
    """Share of code blocks recovered byte-exact, of inline code recovered verbatim and of
    formulas recovered (TeX present)."""
    code_total = code_hit = math_total = math_hit = inline_total = inline_hit = 0
    for case in cases:
        text = fn(case.html)
        code_total += len(case.code_blocks)
        code_hit += sum(block in text for block in case.code_blocks)
        flat = _norm(text)
        inline_total += len(case.inline_code)
        inline_hit += sum(code in flat for code in case.inline_code)
        if case.formulas:
            math_total += len(case.formulas)
            math_hit += sum(_norm(tex) in flat for tex in case.formulas)
    return {
        "code_blocks": code_total,
        "code_exact": round(code_hit / code_total, 4) if code_total else float("nan"),
        "inline_code": inline_total,
        "inline_code_exact": round(inline_hit / inline_total, 4) if inline_total else float("nan"),
        "formulas": math_total,
        "math_recall": round(math_hit / math_total, 4) if math_total else float("nan"),
    }
