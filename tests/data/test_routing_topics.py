"""Code/math routing and the topic classifier."""

from __future__ import annotations

import numpy as np
import pytest
from test_filters import PROSE

from factory.data.quality import QualityConfig, embed
from factory.data.routing import RoutingConfig, code_line_frac, evidence_domain, route, train_router
from factory.data.topics import TopicConfig, assign_topics, topic_centroids

CODE = """import os
from pathlib import Path

def read_config(path):
    # Read key=value lines into a dict.
    result = {}
    for line in Path(path).read_text().splitlines():
        key, _, value = line.partition("=")
        result[key.strip()] = value.strip()
    return result

class Loader:
    def __init__(self, root):
        self.root = root
"""
MATH = "Let f(x) = x^2. Then the derivative is 2x, and the integral of f from 0 to 1 equals 1/3."


def test_code_page_is_routed_to_code_by_evidence():
    cfg = RoutingConfig()
    assert code_line_frac(CODE) > 0.6 and code_line_frac(PROSE) == 0.0
    assert evidence_domain(CODE, 1, 0, "general", cfg) == "code"
    assert evidence_domain(MATH, 0, 4, "general", cfg) == "math"
    assert evidence_domain(PROSE, 0, 0, "general", cfg) is None
    assert evidence_domain(PROSE, 0, 0, "math", cfg) == "math"  # the page router saw formulas in the HTML
    assert route([CODE, PROSE, MATH], [1, 0, 0], [0, 0, 3], ["general"] * 3, None, cfg, 4000) == [
        "code", "general", "math"]


def test_router_fasttext_routes_code_discussion_without_blocks(tmp_path):
    code_pages = [f"{CODE}\nThe function read_config returns a dict of settings {i}." for i in range(30)]
    prose_pages = [PROSE.replace("river", f"river{i}") for i in range(30)]
    texts = code_pages + prose_pages
    qcfg = QualityConfig()
    model = train_router(texts, [2] * 30 + [0] * 30, [0] * 60, ["general"] * 60, tmp_path / "r.bin", qcfg)
    assert model is not None
    # Code without a counted code block and too few code lines for the evidence rule: fastText decides.
    discussion = "def read_config(path): return result. Path read_text splitlines partition key value strip dict " * 3
    cfg = RoutingConfig(min_code_line_frac=1.0)
    assert route([discussion, PROSE], [0, 0], [0, 0], ["general"] * 2, model, cfg, 4000) == ["code", "general"]
    assert train_router([PROSE] * 3, [0] * 3, [0] * 3, ["general"] * 3, tmp_path / "none.bin", qcfg) is None


def test_assign_topics_nearest_centroid_and_other():
    centroids = np.eye(3, dtype=np.float32)
    emb = np.array([[0.9, 0.1, 0], [0, 0, 1], [-1, 0, 0]], dtype=np.float32)
    names = ["a", "b", "c"]
    assert assign_topics(emb, names, centroids, TopicConfig(min_similarity=0.05)) == ["a", "c", "other"]


@pytest.mark.slow
def test_topics_on_minilm_embeddings():
    names, centroids = topic_centroids(lambda xs: embed(xs, 128, 16))
    texts = [
        "The striker scored twice in the second half and the team won the championship final.",
        "Install the package with apt-get, then edit the configuration file and restart the server daemon.",
        "The central bank raised interest rates and stock markets fell as investors worried about inflation.",
    ]
    topics = assign_topics(embed(texts, 128, 16), names, centroids, TopicConfig())
    assert topics == ["sports", "computing", "business_finance"]
