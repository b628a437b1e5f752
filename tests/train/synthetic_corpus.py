"""A tiny filtered corpus and tokenizer for the pre-training stage tests (four domains, topics,
quality scores), written as the ``filtered_corpus`` and ``tokenizer`` artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from factory.data import tokenizer as T

_EN = "the a model data river city music film science history learns reads keeps grows near over with".split()
_DE = "der die das und ist ein eine mit auf Haus Stadt Wasser Musik lernt liest bleibt".split()


def _doc(kind: str, rng: np.random.Generator) -> str:
    n = int(rng.integers(30, 60))
    if kind == "code":
        return "\n".join(f"def f{i}(x):\n    return x + {int(rng.integers(0, 9))}" for i in range(n // 6))
    if kind == "math":
        return " ".join(f"{a} + {b} = {a + b}." for a, b in rng.integers(0, 50, size=(n // 4, 2)))
    words = _DE if kind == "de" else _EN
    return " ".join(str(w) for w in rng.choice(words, size=n)) + "."


def synthetic_corpus(n_docs: int = 160, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    kinds = rng.choice(["general", "general", "code", "math", "de"], size=n_docs)
    rows = []
    for i, kind in enumerate(kinds):
        rows.append({
            "id": f"doc{i}", "url": f"https://example.org/{i}", "text": _doc(kind, rng),
            "language": "de" if kind == "de" else "en",
            "domain": kind if kind in ("code", "math") else "general",
            # "arts" is over-represented: the topic cap must shrink it.
            "topic": "arts" if kind == "general" and i % 4 else ("science" if kind != "de" else "travel"),
            "quality_fasttext": float(rng.random()), "quality_transformer": float(rng.random()),
        })
    return pd.DataFrame(rows)


def write_inputs(root: Path, n_docs: int = 160, vocab_size: int = 400) -> dict[str, Path]:
    corpus = root / "filtered_corpus"
    corpus.mkdir(parents=True)
    df = synthetic_corpus(n_docs)
    df.to_parquet(corpus / "docs.parquet", index=False)
    tok = T.train_bpe(df["text"].tolist(), vocab_size, num_special_tokens=16)
    T.save_tokenizer(tok, root / "tokenizer")
    return {"filtered_corpus": corpus, "tokenizer": root / "tokenizer"}
