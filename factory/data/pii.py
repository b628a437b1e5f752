"""Masking of personal data in extracted text (recipe: "Web Data Curation", PII and safety
filtering, the first curation step).

``mask_pii(text)`` replaces e-mail addresses, phone numbers and public IP addresses with the
tokens ``<EMAIL>``, ``<PHONE>``, ``<IP>`` and returns the counts per kind. Patterns, not a
model: what the web-scale pipelines do at this step, cheap on every document.

What is left alone, on purpose: addresses that identify no one (e-mail at the reserved
``example.com``/``.test``-style names; IPs in loopback, private, link-local, multicast,
documentation and other reserved ranges: ``127.0.0.1`` and ``192.168.0.1`` in a manual are not
personal), dotted section and version numbers (``4.8.1.2``: fewer than two multi-digit octets),
and digit runs without a phone number's shape (dates, version numbers, years or table cells split
by spaces): a phone number here is 9-15 digits in groups, led by ``+country`` or an area code in
parentheses, or split by dashes or dots alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

EMAIL = "<EMAIL>"
PHONE = "<PHONE>"
IP = "<IP>"

_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])")
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.]*\d)")
# A phone number's shapes: +CC or (area code) then groups split by space, dot or dash
# ("+44 20 7946 0958", "(415) 555-0132"); or, without either, groups split by dashes or dots only
# ("415-555-0132"): space-split digit groups are as often years or table cells.
_PHONE = re.compile(
    r"(?<![\w+.-])(?:"
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?|\(\d{1,4}\)[ .-]?)\d{2,4}(?:[ .-]\d{2,4}){1,3}"
    r"|\d{2,4}(?:-\d{2,4}){2,3}|\d{2,4}(?:\.\d{2,4}){2,3}"
    r")(?![\w.-]*\d)"
)
_PHONE_DIGITS = (9, 15)


# RFC 2606 / 6761 names that belong to no one: documentation's example addresses are not personal.
_RESERVED_DOMAINS = ("example.com", "example.net", "example.org")
_RESERVED_SUFFIXES = tuple("." + d for d in _RESERVED_DOMAINS) + (".example", ".test", ".invalid", ".localhost")


def _personal_email(text: str) -> bool:
    domain = text.rsplit("@", 1)[1].lower()
    return domain not in _RESERVED_DOMAINS and not domain.endswith(_RESERVED_SUFFIXES)


def _public_ip(text: str) -> bool:
    # Section and version numbers (4.8.1.2, 1.5.0.9) are valid addresses: a public address in text
    # has at least two octets of two or more digits (93.184.216.34); 8.8.8.8 is a resolver, not a person.
    if sum(len(octet) > 1 for octet in text.split(".")) < 2:
        return False
    try:
        address = ipaddress.IPv4Address(text)
    except ValueError:  # 999.1.1.1: not an address
        return False
    return address.is_global and not address.is_multicast


def _phone(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    return _PHONE_DIGITS[0] <= digits <= _PHONE_DIGITS[1]


# (kind, pattern, replacement, whether a match is personal data), applied in this order: e-mail
# first, since an address's digits are no phone number.
_KINDS: tuple[tuple[str, re.Pattern, str, Callable[[str], bool]], ...] = (
    ("email", _EMAIL, EMAIL, _personal_email),
    ("ip", _IPV4, IP, _public_ip),
    ("phone", _PHONE, PHONE, _phone),
)


def mask_pii(text: str) -> tuple[str, Counter]:
    """``text`` with personal data replaced (``<EMAIL>``, ``<PHONE>``, ``<IP>``), and how many of
    each kind were replaced."""
    counts: Counter = Counter()
    for kind, pattern, replacement, personal in _KINDS:

        def replace(match: re.Match, kind=kind, replacement=replacement, personal=personal) -> str:
            if not personal(match.group(0)):
                return match.group(0)
            counts[kind] += 1
            return replacement

        text = pattern.sub(replace, text)
    return text, counts
