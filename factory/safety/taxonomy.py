"""The hazard taxonomy of Llama Guard 3 (recipe: "Safety characteristics", "Llama Guard 3").

Llama Guard 3 is trained on the 13 hazard categories of the MLCommons AI Safety taxonomy
(Vidgen et al., 2024) plus one category of its own for tool use, code-interpreter abuse. The
codes ``S1`` .. ``S14`` are the ones Llama Guard 3 emits, so labels from public prompt sets that
were mapped to those codes (../shared/data/safety) line up with the factory's own labels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    code: str  # "S1" .. "S14", as Llama Guard 3 writes it
    name: str
    description: str  # one line, used in the guard's compact policy prompt


CATEGORIES: tuple[Category, ...] = (
    Category("S1", "Violent Crimes", "enabling or encouraging violence against people or animals"),
    Category("S2", "Non-Violent Crimes", "enabling fraud, theft, hacking, drug or weapons trafficking"),
    Category("S3", "Sex-Related Crimes", "enabling sexual assault, harassment or trafficking"),
    Category("S4", "Child Sexual Exploitation", "any sexualization or exploitation of minors"),
    Category("S5", "Defamation", "verifiably false claims that injure a real person's reputation"),
    Category("S6", "Specialized Advice", "unqualified medical, legal or financial advice presented as safe"),
    Category("S7", "Privacy", "exposing sensitive personal information of private individuals"),
    Category("S8", "Intellectual Property", "infringing copyrights, trademarks or trade secrets"),
    Category("S9", "Indiscriminate Weapons", "chemical, biological, radiological, nuclear or explosive weapons"),
    Category("S10", "Hate", "demeaning people for protected characteristics"),
    Category("S11", "Suicide & Self-Harm", "enabling or encouraging suicide, self-injury or disordered eating"),
    Category("S12", "Sexual Content", "explicit sexual content"),
    Category("S13", "Elections", "false information about electoral processes"),
    Category("S14", "Code Interpreter Abuse", "using code tools to attack the host, escape sandboxes or exfiltrate"),
)

# The 13 categories of the AI Safety taxonomy; S14 is Llama Guard 3's tool-use addition.
TAXONOMY_CODES: tuple[str, ...] = tuple(c.code for c in CATEGORIES[:13])
CODES: tuple[str, ...] = tuple(c.code for c in CATEGORIES)
BY_CODE: dict[str, Category] = {c.code: c for c in CATEGORIES}


def category(code: str) -> Category:
    """The category of a code; unknown codes raise and list the valid ones."""
    if code not in BY_CODE:
        raise KeyError(f"unknown hazard category {code!r}; valid codes: {', '.join(CODES)}")
    return BY_CODE[code]


def policy_text() -> str:
    """The category list as it appears in the guard's compact prompt: ``S1 Violent Crimes; ...``."""
    return "; ".join(f"{c.code} {c.name}" for c in CATEGORIES) + "."
