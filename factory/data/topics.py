"""Knowledge / topic classifier (recipe, "Determining the data mix": "a classifier to categorize the
types of information contained in our web data", used to downsample over-represented categories
such as arts and entertainment).

Nearest centroid on MiniLM sentence embeddings: each topic is described by a few seed sentences
written here; a topic's centroid is the normalized mean of its seeds' embeddings, and a document
takes the topic of the most similar centroid (cosine), or ``other`` below ``min_similarity``.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from factory.core.stage import StageConfig

TOPIC_SEEDS: dict[str, tuple[str, ...]] = {
    "computing": (
        "Programming languages, source code, functions, classes and software libraries.",
        "Operating systems, Linux system administration, packages, shells and configuration files.",
        "Computer networks, servers, protocols, databases and APIs.",
    ),
    "science_math": (
        "Mathematics: equations, proofs, algebra, geometry, calculus and probability.",
        "Physics, chemistry and biology research, experiments and scientific theories.",
        "Statistics, data analysis and numerical methods.",
    ),
    "arts_entertainment": (
        "Movies, television series, actors and celebrity news.",
        "Music albums, concerts, bands and singers.",
        "Video games, fashion, art exhibitions and pop culture.",
    ),
    "news_politics": (
        "Government, elections, politicians and public policy.",
        "World news, international relations, conflicts and diplomacy.",
        "Law, courts, crime and public safety reporting.",
    ),
    "business_finance": (
        "Companies, markets, stocks, the economy and investing.",
        "Shopping, products, prices, sales and online stores.",
        "Jobs, careers, management and entrepreneurship.",
    ),
    "health": (
        "Medicine, diseases, symptoms, treatments and hospitals.",
        "Fitness, nutrition, diet and mental health.",
    ),
    "sports": (
        "Football, basketball, tennis and other sports matches, teams and athletes.",
        "Sports results, tournaments, championships and transfers.",
    ),
    "society_reference": (
        "History, geography, culture and encyclopedic knowledge.",
        "Education, schools, universities and language learning.",
        "Travel, food, cooking, home and family life.",
    ),
}
OTHER = "other"


class TopicConfig(StageConfig):
    """Nearest-centroid topic classifier."""

    min_similarity: float = Field(
        0.05, ge=-1.0, le=1.0, description="Cosine to the best centroid below which a document is 'other'.")


def topic_centroids(embed_fn) -> tuple[list[str], np.ndarray]:
    """(topic names, (n_topics, dim) L2-normalized centroids) from the seed sentences."""
    names = list(TOPIC_SEEDS)
    rows = []
    for name in names:
        vecs = embed_fn(list(TOPIC_SEEDS[name]))
        c = vecs.mean(axis=0)
        rows.append(c / max(np.linalg.norm(c), 1e-12))
    return names, np.stack(rows).astype(np.float32)


def assign_topics(emb: np.ndarray, names: list[str], centroids: np.ndarray, cfg: TopicConfig) -> list[str]:
    """Topic per document from its L2-normalized embedding (n, dim)."""
    if len(emb) == 0:
        return []
    sims = emb @ centroids.T  # (n, n_topics) cosines
    best = sims.argmax(axis=1)
    return [names[j] if sims[i, j] >= cfg.min_similarity else OTHER for i, j in enumerate(best)]
