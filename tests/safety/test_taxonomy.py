import pytest

from factory.safety.taxonomy import CATEGORIES, CODES, TAXONOMY_CODES, category, policy_text


def test_thirteen_hazards_plus_code_interpreter_abuse():
    assert len(TAXONOMY_CODES) == 13
    assert CODES == tuple(f"S{i}" for i in range(1, 15))
    assert category("S14").name == "Code Interpreter Abuse"
    assert category("S9").name == "Indiscriminate Weapons"
    assert len({c.name for c in CATEGORIES}) == 14


def test_unknown_code_lists_valid_ones():
    with pytest.raises(KeyError, match="S1, S2"):
        category("S15")


def test_policy_text_names_every_category():
    text = policy_text()
    assert all(f"{c.code} {c.name}" in text for c in CATEGORIES)
