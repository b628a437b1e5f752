"""Code and math routing of a page *before* its text is rendered, so that code and math pages go
through their own extraction settings (recipe, "Code and reasoning data": domain-specific
pipelines pick out code and math pages and extract them with custom HTML extraction settings).

The router reads the markup the parse counted in the page's kept subtrees (``<pre>``, ``<code>``,
``<kbd>``, ``<samp>``; MathML ``<math>`` and MathJax TeX scripts; formula images) against the
amount of text. What the settings change, and why:

- ``strip_emphasis``: the general pipeline removes markdown emphasis and inline-code markers from
  prose (``**bold**``, ``__bold__``, ``*italic*``, `` `code` ``). On code pages those characters
  are content (``__init__``, ``*args``, ``**kwargs``), on math pages TeX operators
  (``a^* b^*``, ``x__i``), so only line markers (headings, bullets, quotes) are removed there.
- ``link_density_max``: blocks whose text is mostly link text are navigation on an article, but an
  API reference cross-links nearly every name it mentions (``See also: os.path.join()``), so
  code pages keep blocks up to a higher link share.

The text-level router of ``filtered_corpus`` (``factory.data.routing``) later assigns the final
``domain`` and uses this page domain as evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field

from factory.core.stage import StageConfig

DOMAINS = ("general", "code", "math")
CODE_TAGS = ("pre", "code", "kbd", "samp")
MATH_TAGS = ("math", "tex", "img-math")  # img-math: an <img> whose class/src/alt marks a formula


@dataclass(frozen=True)
class DomainSettings:
    """Rendering choices that differ between the general, code and math pipelines."""

    strip_emphasis: bool  # remove inline markdown markers (emphasis, inline code) from prose lines
    link_density_max: float  # shorter blocks with a larger share of link text are navigation


SETTINGS = {
    "general": DomainSettings(strip_emphasis=True, link_density_max=0.5),
    "code": DomainSettings(strip_emphasis=False, link_density_max=0.8),
    "math": DomainSettings(strip_emphasis=False, link_density_max=0.5),
}


class PageRoutingConfig(StageConfig):
    """Thresholds of the markup router that picks a page's extraction settings."""

    enabled: bool = Field(True, description="Route pages to code/math settings; off: every page gets the general ones.")
    min_math: int = Field(2, ge=1, description="Formulas (MathML, MathJax TeX, formula images) that make a math page.")
    min_pre: int = Field(1, ge=0, description="<pre> blocks a code page needs.")
    min_code_per_kchar: float = Field(
        1.0, gt=0.0, description="Code elements (pre/code/kbd/samp) per 1000 chars of text that make a code page.")


def page_domain(markup: dict[str, int], text_chars: int, cfg: PageRoutingConfig) -> str:
    """The extraction domain of a page from its markup counts and its kept text length."""
    if not cfg.enabled:
        return "general"
    if sum(markup.get(t, 0) for t in MATH_TAGS) >= cfg.min_math:
        return "math"
    code = sum(markup.get(t, 0) for t in CODE_TAGS)
    if markup.get("pre", 0) >= cfg.min_pre and code and 1000.0 * code / max(text_chars, 1) >= cfg.min_code_per_kchar:
        return "code"
    return "general"
