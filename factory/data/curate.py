"""The ``filtered_corpus`` stage: code/math routing, per-language heuristic filters, model-based
quality scores and topic labels over the deduplicated documents (recipe, "Web Data Curation" from
"Heuristic Filtering" through "Multilingual data"; the knowledge classifier of "Determining the
data mix").

Sub-stages, in order (per-document work runs over shards, in-process or as Ray Data maps):
1. ``route``: the code/math router's fastText is trained on weak labels (driver), then each shard
   gets a domain. Language and its score come with the documents (extracted_docs identifies them,
   so that dedup already runs per language).
2. ``unigrams``: per-language corpus token counts (a sharded reduction) for the KL filter.
3. ``heuristics``: language allow-list and confidence, line-level repetition cleaning, then the
   document filters with per-language and per-domain thresholds; first drop reason recorded.
4. ``quality_fasttext``: trained on reference-like positives vs. dropped and degraded negatives
   (``factory.data.quality``), scored per shard together with the MiniLM embeddings.
5. ``quality_transformer``: logistic head on the embeddings, fitted on the teacher score of a
   sample of kept documents and of the fastText negatives.
6. ``topics``: nearest topic centroid on the same embeddings.
7. the quality threshold drops low-scoring documents of the configured domains.

The stage still holds its document table on the driver: ``read_docs`` of the input parts, and under
``executor: ray`` each sub-stage's shards go to Ray Data and back (``documents.map_shards``).

Outputs: ``docs.parquet/`` (input columns + quality_fasttext, quality_transformer, domain, topic; as
many parts as the input, contiguous in input order),
``dropped_samples.parquet`` (up to N documents per drop
reason, for audit) and ``classifiers.npz`` (the MiniLM quality head and the topic centroids).
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.core.steps import Steps
from factory.data.documents import Executor, doc_parts, map_shards, read_docs, write_docs
from factory.data.filters import (
    FilterThresholds,
    LanguageThresholds,
    LineRepetitionCleaner,
    UnigramModel,
    apply_filters,
    default_filters,
    unigram_counts,
)
from factory.data.langid import detect_languages
from factory.data.quality import (
    QualityConfig,
    embed,
    fasttext_probs,
    fit_head,
    head_scores,
    heuristic_score,
    quality_training_set,
    train_fasttext,
)
from factory.data.routing import RoutingConfig, route, train_router
from factory.data.topics import TopicConfig, assign_topics, topic_centroids

DROPPED_FILE = "dropped_samples.parquet"
CLASSIFIERS_FILE = "classifiers.npz"
ADDED_COLUMNS = ("quality_fasttext", "quality_transformer", "domain", "topic")


class FilterConfig(StageConfig):
    """Heuristics, language ID, quality models, routing and topics of ``filtered_corpus``."""

    executor: Executor = Field("local", description="'local' runs shards in-process; 'ray' maps them with Ray Data.")
    num_shards: int = Field(4, ge=1, description="Shards the per-document work is split into.")
    langid_max_chars: int = Field(
        2000, ge=50, description="Characters the language model reads of the quality head's negative pages (documents "
        "carry extracted_docs' language).")
    languages: list[str] = Field([], description="Languages kept (lid.176 codes); empty keeps all.")
    min_language_score: float = Field(
        0.3, ge=0.0, le=1.0, description="Min language-ID confidence of prose documents (code pages are exempt).")
    heuristics: FilterThresholds = Field(
        FilterThresholds(), description="Base heuristic thresholds (Gopher's values by default).")
    heuristics_by_language: dict[str, dict[str, Any]] = Field(
        {"ja": {"min_mean_word_length": 1.0, "min_words": 100}, "zh": {"min_mean_word_length": 1.0, "min_words": 100}},
        description="Per-language threshold overrides (CJK tokens are single characters).",
    )
    heuristics_by_domain: dict[str, dict[str, Any]] = Field(
        {"code": {"min_alpha_words_frac": 0.4, "min_stop_words": 0, "max_symbol_word_ratio": 0.5,
                  "min_mean_word_length": 1.5, "max_mean_word_length": 15.0, "max_bullet_lines_frac": 1.0,
                  "max_dup_line_frac": 0.5, "max_dup_line_char_frac": 0.4}},
        description="Per-domain threshold overrides, applied after the language's.",
    )
    quality: QualityConfig = Field(QualityConfig(), description="Quality classifiers.")
    quality_threshold: float = Field(
        0.5, ge=0.0, le=1.0, description="Documents whose mean of quality_fasttext and quality_transformer is below "
        "this are dropped.")
    quality_domains: list[str] = Field(
        ["general", "math"], description="Domains the quality threshold applies to (code pages have their own pipeline "
        "in the recipe).")
    routing: RoutingConfig = Field(RoutingConfig(), description="Code/math router.")
    topics: TopicConfig = Field(TopicConfig(), description="Topic classifier.")
    dropped_samples_per_reason: int = Field(5, ge=0, description="Dropped documents kept per reason for audit.")
    dropped_sample_chars: int = Field(2000, ge=100, description="Characters of each audited dropped document kept.")


def _route_shard(shard: pd.DataFrame, cfg: FilterConfig, router: Path | None) -> pd.DataFrame:
    domains = route(shard["text"].tolist(), shard["n_code_blocks"].tolist(), shard["n_math"].tolist(),
                    shard["page_domain"].tolist(), router, cfg.routing, cfg.quality.fasttext_max_chars)
    return pd.DataFrame({"domain": domains})


def _unigram_shard(shard: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for lang, group in shard.groupby("language", sort=False):
        rows += [(lang, tok, n) for tok, n in unigram_counts(group["text"].tolist()).items()]
    return pd.DataFrame(rows, columns=["language", "token", "n"])


def _heuristics_shard(shard: pd.DataFrame, cfg: FilterConfig, models: dict[str, UnigramModel]) -> pd.DataFrame:
    thresholds = LanguageThresholds(cfg.heuristics, cfg.heuristics_by_language, cfg.heuristics_by_domain)
    cleaner = LineRepetitionCleaner(thresholds)
    filters = default_filters(thresholds, models)
    allowed = set(cfg.languages)
    texts, removed, reasons, hscores = [], [], [], []
    for doc in shard[["text", "language", "language_score", "domain"]].to_dict("records"):
        reason = None
        if allowed and doc["language"] not in allowed:
            reason = "language:not_allowed"
        elif doc["domain"] != "code" and doc["language_score"] < cfg.min_language_score:
            reason = "language:low_score"
        text, n_removed = cleaner.clean(doc)
        doc["text"] = text
        if reason is None:
            reason = "line_repetition:empty" if not text.strip() else apply_filters(doc, filters)
        texts.append(text)
        removed.append(n_removed)
        reasons.append(reason or "")
        hscores.append(heuristic_score(text, doc["language"], cfg.quality))
    return pd.DataFrame({"text": texts, "lines_removed": removed, "drop_reason": reasons, "heuristic_score": hscores})


def _score_shard(shard: pd.DataFrame, cfg: FilterConfig, model: Path) -> pd.DataFrame:
    texts = shard["text"].tolist()
    q = cfg.quality
    probs = fasttext_probs(model, texts, q.fasttext_max_chars)
    emb = embed(texts, q.encoder_max_tokens, q.encoder_batch_size)
    return pd.DataFrame({"quality_fasttext": probs["hq"], "emb": [row.tobytes() for row in emb]})


def _holdout_accuracy(texts: list[str], labels: list[str], scratch: Path, q: QualityConfig) -> tuple[Path, float]:
    """Train on 80% of the set, report accuracy on the other 20%, return that model."""
    order = list(range(len(texts)))
    random.Random(q.seed).shuffle(order)
    cut = max(1, int(len(order) * 0.8))
    train, test = order[:cut], order[cut:]
    if len({labels[i] for i in train}) < 2:
        train, test = order, []
    path = train_fasttext([texts[i] for i in train], [labels[i] for i in train], scratch / "quality_fasttext.bin", q)
    if not test:
        return path, float("nan")
    p = fasttext_probs(path, [texts[i] for i in test], q.fasttext_max_chars)["hq"]
    acc = float(np.mean([(pi >= 0.5) == (labels[i] == "hq") for pi, i in zip(p, test, strict=True)]))
    return path, acc


def _dropped_samples(df: pd.DataFrame, k: int, chars: int) -> pd.DataFrame:
    cols = ["id", "url", "source", "language", "domain", "drop_reason", "text"]
    dropped = df[df["drop_reason"] != ""]
    if dropped.empty or k == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    sample = dropped.groupby("drop_reason", sort=True, group_keys=False).head(k)[cols].copy()
    sample["text"] = sample["text"].str.slice(0, chars)
    return sample.reset_index(drop=True)


def _nested(reasons: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for reason, n in sorted(reasons.items()):
        group, _, detail = reason.partition(":")
        out[group][detail or group] = int(n)
    return dict(out)


@dataclass
class Curated:
    """What ``curate_frame`` returns: the kept documents, the audit sample of dropped ones, the
    stage metadata and the small classifiers (the MiniLM quality head and the topic centroids)."""

    docs: pd.DataFrame
    dropped: pd.DataFrame
    meta: dict[str, Any]
    classifiers: dict[str, np.ndarray]


@dataclass
class _FastTextScores:
    """The fastText quality step's training set, model and holdout accuracy, and the kept documents' embeddings."""

    texts: list[str]
    labels: list[str]
    label_counts: dict[str, int]
    model: Path
    holdout_accuracy: float
    emb: np.ndarray


@dataclass
class _QualityHead:
    head: dict[str, Any]
    n_kept: int  # kept documents the head was fitted on
    n_negatives: int  # fastText negatives it was fitted on


def _route(df: pd.DataFrame, cfg: FilterConfig, scratch: Path, ctx: StageContext) -> tuple[pd.DataFrame, Path | None]:
    """Train the code/math router on weak labels, then give every document a ``domain``."""
    router = train_router(df["text"].tolist(), df["n_code_blocks"].tolist(), df["n_math"].tolist(),
                          df["page_domain"].tolist(), scratch / "router_fasttext.bin", cfg.quality)
    routed = map_shards(lambda s: _route_shard(s, cfg, router), df[["text", "n_code_blocks", "n_math", "page_domain"]],
                        cfg.num_shards, cfg.executor, ctx.num_cpus)
    return pd.concat([df, routed], axis=1), router


def _unigram_models(df: pd.DataFrame, cfg: FilterConfig, ctx: StageContext) -> dict[str, UnigramModel]:
    """Per-language corpus token counts (a sharded reduction) as the KL filter's unigram models."""
    counts = map_shards(_unigram_shard, df[["text", "language"]], cfg.num_shards, cfg.executor, ctx.num_cpus)
    return {
        lang: UnigramModel(dict(zip(g["token"], g["n"].astype(int), strict=True)), cfg.heuristics.kl_smoothing)
        for lang, g in counts.groupby(["language", "token"], sort=False)["n"].sum().reset_index().groupby("language")
    }


def _heuristics(df: pd.DataFrame, cfg: FilterConfig, models: dict[str, UnigramModel], ctx: StageContext) -> int:
    """Clean and filter every document in place: ``text`` cleaned, ``drop_reason`` ('' = kept) and
    ``heuristic_score`` added. Returns the lines the repetition cleaner removed."""
    heur = map_shards(lambda s: _heuristics_shard(s, cfg, models), df[["text", "language", "language_score", "domain"]],
                      cfg.num_shards, cfg.executor, ctx.num_cpus)
    df["text"] = heur["text"].to_numpy()
    df["drop_reason"] = heur["drop_reason"].to_numpy()
    df["heuristic_score"] = heur["heuristic_score"].to_numpy()
    return int(heur["lines_removed"].sum())


def _quality_fasttext(df: pd.DataFrame, kept: pd.DataFrame, cfg: FilterConfig, scratch: Path,
                      ctx: StageContext) -> _FastTextScores:
    """Train the fastText quality model (kept vs. dropped and degraded pages), then score and embed
    every kept document (``quality_fasttext`` is added to ``kept``)."""
    q = cfg.quality
    texts, labels, label_counts = quality_training_set(
        kept["text"].tolist(), kept["source"].tolist(), kept["heuristic_score"].tolist(),
        df.loc[df["drop_reason"].str.split(":").str[0].isin(q.negative_drop_groups), "text"].tolist(), q)
    model, accuracy = _holdout_accuracy(texts, labels, scratch, q)
    scored = map_shards(lambda s: _score_shard(s, cfg, model), kept[["text"]], cfg.num_shards, cfg.executor,
                        ctx.num_cpus)
    kept["quality_fasttext"] = scored["quality_fasttext"].to_numpy()
    emb = np.frombuffer(b"".join(scored["emb"]), dtype=np.float32).reshape(len(kept), -1)
    return _FastTextScores(texts, labels, label_counts, model, accuracy, emb)


def _quality_head(kept: pd.DataFrame, ft: _FastTextScores, cfg: FilterConfig) -> _QualityHead:
    """Fit the logistic head on the embeddings and score every kept document (``quality_transformer``)."""
    q = cfg.quality
    # The head learns from the teacher on both sides of the quality line: a sample of the kept
    # documents plus a sample of the fastText negatives (dropped and degraded pages).
    rng = np.random.default_rng(q.seed)
    negatives = [x for x, lab in zip(ft.texts, ft.labels, strict=True) if lab == "lq"]
    n_neg = min(len(negatives), q.head_train_docs // 2)
    pos_idx = rng.choice(len(kept), size=min(q.head_train_docs - n_neg, len(kept)), replace=False)
    neg_texts = [negatives[i] for i in rng.choice(len(negatives), size=n_neg, replace=False)] if n_neg else []
    neg_langs, _ = detect_languages(neg_texts, cfg.langid_max_chars)
    teacher_pos = 0.5 * (kept["quality_fasttext"].to_numpy()[pos_idx] + kept["heuristic_score"].to_numpy()[pos_idx])
    neg_heuristic = [heuristic_score(x, lang, q) for x, lang in zip(neg_texts, neg_langs, strict=True)]
    teacher_neg = 0.5 * (fasttext_probs(ft.model, neg_texts, q.fasttext_max_chars)["hq"] + np.array(neg_heuristic))
    x_fit = np.vstack([ft.emb[pos_idx], embed(neg_texts, q.encoder_max_tokens, q.encoder_batch_size)])
    head = fit_head(x_fit, np.concatenate([teacher_pos, teacher_neg]), q)
    kept["quality_transformer"] = head_scores(head, ft.emb)
    return _QualityHead(head, int(len(pos_idx)), int(n_neg))


def _topics(kept: pd.DataFrame, emb: np.ndarray, cfg: FilterConfig) -> tuple[list[str], np.ndarray]:
    """Nearest topic centroid of every kept document (``topic``); returns the topic names and centroids."""
    q = cfg.quality
    names, centroids = topic_centroids(lambda xs: embed(xs, q.encoder_max_tokens, q.encoder_batch_size))
    kept["topic"] = assign_topics(emb, names, centroids, cfg.topics)
    return names, centroids


def _quality_threshold(df: pd.DataFrame, kept: pd.DataFrame, cfg: FilterConfig) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop low-quality documents of the configured domains: (output docs, every dropped document)."""
    combined = 0.5 * (kept["quality_fasttext"] + kept["quality_transformer"])
    low = (combined < cfg.quality_threshold) & kept["domain"].isin(cfg.quality_domains)
    kept.loc[low, "drop_reason"] = "quality:below_threshold"
    audit = pd.concat([df[df["drop_reason"] != ""], kept[low]], ignore_index=True)
    out = kept[~low].reset_index(drop=True)
    base_cols = [c for c in df.columns if c not in (*ADDED_COLUMNS, "drop_reason", "heuristic_score")]
    return out[base_cols + list(ADDED_COLUMNS)], audit


def _quality_meta(kept: pd.DataFrame, docs: pd.DataFrame, ft: _FastTextScores, qh: _QualityHead) -> dict[str, Any]:
    corr = (float(np.corrcoef(kept["quality_fasttext"], kept["quality_transformer"])[0, 1]) if len(kept) > 2
            else float("nan"))
    return {
        "labels": ft.label_counts,
        "fasttext_holdout_accuracy": round(ft.holdout_accuracy, 4),
        "head_train_docs": {"kept": qh.n_kept, "negatives": qh.n_negatives},
        "head_final_loss": round(qh.head["loss"], 4),
        "fasttext_transformer_corr": round(corr, 4),
        "mean_quality_fasttext": round(float(docs["quality_fasttext"].mean()), 4) if len(docs) else 0.0,
        "mean_quality_transformer": round(float(docs["quality_transformer"].mean()), 4) if len(docs) else 0.0,
    }


def curate_frame(df: pd.DataFrame, cfg: FilterConfig, scratch: Path, ctx: StageContext) -> Curated:
    """Run every sub-stage on a document table: kept docs, dropped samples, metadata and classifiers."""
    steps = Steps("filtered_corpus", ctx.log)
    df = df.reset_index(drop=True)
    if df.empty:
        raise ValueError("filtered_corpus: no input documents")
    with steps.step("route") as s:
        df, router = _route(df, cfg, scratch, ctx)
        s.count(docs=len(df), **{d: int(n) for d, n in Counter(df["domain"]).items()})
    ctx.log(f"filtered_corpus: languages {dict(Counter(df['language']).most_common(8))}, "
            f"domains {dict(Counter(df['domain']))}")
    with steps.step("unigrams") as s:
        models = _unigram_models(df, cfg, ctx)
        s.count(languages=len(models))
    with steps.step("heuristics") as s:
        lines_removed = _heuristics(df, cfg, models, ctx)
        kept = df[df["drop_reason"] == ""].reset_index(drop=True)
        s.count(kept=len(kept), dropped=len(df) - len(kept), lines_removed=lines_removed)
    if kept.empty:
        raise ValueError(f"filtered_corpus: the heuristics dropped all {len(df)} documents: "
                         f"{Counter(df['drop_reason'])}")
    with steps.step("quality_fasttext_and_embed") as s:
        ft = _quality_fasttext(df, kept, cfg, scratch, ctx)
        s.count(train_docs=len(ft.texts), scored=len(kept))
    with steps.step("quality_transformer") as s:
        qh = _quality_head(kept, ft, cfg)
        s.count(kept=qh.n_kept, negatives=qh.n_negatives)
    with steps.step("topics") as s:
        names, centroids = _topics(kept, ft.emb, cfg)
        s.count(topics=len(names))

    docs, audit = _quality_threshold(df, kept, cfg)
    total = steps.total_seconds
    meta = {
        "docs_in": int(len(df)),
        "docs_out": int(len(docs)),
        "dropped_by_reason": _nested(Counter(audit["drop_reason"])),
        "lines_removed_line_repetition": lines_removed,
        "per_language": dict(Counter(docs["language"]).most_common()),
        "per_domain": dict(Counter(docs["domain"]).most_common()),
        "per_topic": dict(Counter(docs["topic"]).most_common()),
        "quality": _quality_meta(kept, docs, ft, qh),
        "router_trained": router is not None,
        "executor": cfg.executor,
        "steps": steps.summary(),
        "total_s": round(total, 3),
        "docs_per_s": round(len(df) / total, 2),
    }
    classifiers = {"quality_head_w": qh.head["w"], "quality_head_b": np.array([qh.head["b"]]),
                   "topic_names": np.array(names), "topic_centroids": centroids}
    dropped = _dropped_samples(audit, cfg.dropped_samples_per_reason, cfg.dropped_sample_chars)
    return Curated(docs, dropped, meta, classifiers)


def run_filtered_corpus(cfg: FilterConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    """Read ``deduped_docs/docs.parquet``; write the curated ``docs.parquet``, the audit sample of
    dropped documents and the small classifiers; return counts, per-step seconds and counts, and docs/s."""
    parts = doc_parts(inputs["deduped_docs"])
    df = read_docs(inputs["deduped_docs"])
    ctx.log(f"filtered_corpus: {len(df)} documents, {cfg.num_shards} shards, executor={cfg.executor}")
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(ctx.work_dir) if ctx.work_dir is not None else Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        result = curate_frame(df, cfg, scratch, ctx)
    meta = result.meta
    write_docs(result.docs, out, num_parts=len(parts))
    result.dropped.to_parquet(out / DROPPED_FILE, index=False)
    np.savez(out / CLASSIFIERS_FILE, **result.classifiers)
    ctx.log(f"filtered_corpus: kept {meta['docs_out']}/{meta['docs_in']} at {meta['docs_per_s']} docs/s; "
            f"dropped {meta['dropped_by_reason']}")
    return meta
