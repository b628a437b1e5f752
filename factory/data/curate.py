"""The ``filtered_corpus`` stage: code/math routing, per-language heuristic filters, model-based
quality scores and topic labels over the deduplicated documents (recipe, "Web Data Curation" from
"Heuristic Filtering" through "Multilingual data"; the knowledge classifier of "Determining the
data mix").

The documents stream: per-document work maps the input parts (``documents.map_parts``: part by part
in this process under ``executor: local``, Ray Data ``read_parquet`` -> ``map_batches`` ->
``write_parquet`` under ``executor: ray``) into parts in the stage's work folder and, last, into the
output, which the workers write. The global fits run on the driver from bounded inputs. Sub-stages,
in order:

1. ``sample``: a seeded sample of at most ``sample_docs`` documents, those whose seeded hash of the
   id is smallest (every document of a smaller corpus), gathered in input order with only the
   columns the fits read (``documents.collect_parts``): the only texts the driver holds.
2. ``route``: the code/math router's fastText is trained on weak labels of the sample. Language
   and its score come with the documents (extracted_docs identifies them, so that dedup already
   runs per language).
3. ``unigrams``: per-language token counts of the sample, the KL filter's unigram models.
4. ``heuristics`` (part map): every document gets its ``domain`` from the router; then the language
   allow-list and confidence, line-level repetition cleaning and the document filters with
   per-language and per-domain thresholds; the first drop reason and a heuristic score recorded.
5. ``quality_fasttext_and_embed``: fastText trained on the sampled documents as the heuristics left
   them (reference-like positives vs. dropped and degraded negatives, ``factory.data.quality``);
   then a part map scores every kept document with it and embeds it with MiniLM.
6. ``quality_transformer``: logistic head on the embeddings, fitted on the teacher score of the
   sample's kept documents and of the fastText negatives.
7. ``topics``: the topic centroids, from seed sentences.
8. ``quality_threshold`` (part map into the output): the head's score and the nearest topic of
   every kept document; the threshold drops low-scoring documents of the configured domains.

Besides the sample the driver holds the models, small per-document columns (language, domain,
drop reason, scores: the metadata's counts) and the audit sample of dropped documents (at most
``dropped_samples_per_reason`` per reason from each part). The models the maps apply (router and
quality fastText, unigram counts, quality head and topic centroids) are files in the work folder,
loaded by each map call (once per process): a mapped function carries only the config and paths.

Outputs: ``docs.parquet/`` (input columns + quality_fasttext, quality_transformer, domain, topic;
one part per input part that keeps a document, with either executor),
``dropped_samples.parquet`` (up to N documents per drop reason, for audit) and ``classifiers.npz``
(the MiniLM quality head and the topic centroids).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.core.steps import Steps
from factory.data.documents import Executor, collect_parts, doc_parts, map_parts, require_columns, typed_docs
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
    EMBED_DIM,
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
BELOW_THRESHOLD = "quality:below_threshold"
# Columns of the work folder's parts that the output does not carry.
_WORK_COLUMNS = ("drop_reason", "heuristic_score", "lines_removed", "emb")
_AUDIT_COLUMNS = ["id", "url", "source", "language", "domain", "drop_reason", "text"]


class FilterConfig(StageConfig):
    """Heuristics, language ID, quality models, routing and topics of ``filtered_corpus``."""

    executor: Executor = Field(
        "local", description="'local' maps the input parts in-process; 'ray' streams them through Ray Data.")
    sample_docs: int = Field(
        50_000, ge=1, description="Documents the global fits (router, unigram models, quality fastText and head) learn "
        "from: a seeded sample, the only texts the driver holds (~0.5 GB at 10 kB a document).")
    sample_seed: int = Field(0, description="Seed of that sample.")
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


# --- the sample the global fits learn from ----------------------------------------------------

def sample_keys(ids: Sequence[str], seed: int) -> np.ndarray:
    """Each document's rank in the sample: a seeded 64-bit hash of its id (uint64). The sample is
    the smallest keys, so it depends on the document set only, not on its parts or the executor."""
    return np.array([int.from_bytes(hashlib.blake2b(f"{seed}:{i}".encode(), digest_size=8).digest(), "big")
                     for i in ids], dtype=np.uint64)


def _key_part(part: pd.DataFrame, seed: int) -> pd.DataFrame:
    return pd.DataFrame({"key": sample_keys(part["id"], seed)})


def _reason_group(reasons: pd.Series) -> pd.Series:
    """'filter:reason' -> 'filter' ('' for kept documents). (Plain Python: under Ray the column is
    Arrow-backed, and ``.str.split`` gives Arrow lists that ``.str[0]`` does not index.)"""
    return reasons.map(lambda r: r.partition(":")[0])


def _sample_part(part: pd.DataFrame, seed: int, cutoff: int | None, groups: tuple[str, ...] | None) -> pd.DataFrame:
    """Part map: the part's sampled rows (key up to ``cutoff``; all when it is None), of the drop
    reason ``groups`` ('' = kept) when given."""
    if cutoff is not None:
        part = part[sample_keys(part["id"], seed) <= cutoff]
    if groups is not None:
        part = part[_reason_group(part["drop_reason"]).isin(groups)]
    return part.reset_index(drop=True)


def fit_sample(parts: list[Path], n_docs: int, cfg: FilterConfig, ctx: StageContext) -> tuple[int | None, pd.DataFrame]:
    """The sample's largest key (None: every document is in it) and the sampled documents' columns
    for the router and the unigram models, in input order. Only the keys (8 bytes a document) come
    to the driver to find the cutoff."""
    cutoff = None
    if n_docs > cfg.sample_docs:
        keys = collect_parts(partial(_key_part, seed=cfg.sample_seed), parts, cfg.executor, ctx.num_cpus,
                             columns=["id"])["key"].to_numpy(np.uint64)
        cutoff = int(np.partition(keys, cfg.sample_docs - 1)[cfg.sample_docs - 1])
    docs = typed_docs(_collect_sample(parts, ["id", "text", "n_code_blocks", "n_math", "page_domain", "language"],
                                      cutoff, cfg, ctx))
    return cutoff, docs


def _collect_sample(parts: list[Path], columns: list[str], cutoff: int | None, cfg: FilterConfig, ctx: StageContext,
                    groups: tuple[str, ...] | None = None) -> pd.DataFrame:
    rows = collect_parts(partial(_sample_part, seed=cfg.sample_seed, cutoff=cutoff, groups=groups), parts,
                         cfg.executor, ctx.num_cpus, columns=columns)
    return rows.head(cfg.sample_docs)  # keys are 64-bit hashes of unique ids: a tie at the cutoff is a collision


# --- part maps (each loads the models it applies from the work folder) --------------------------

def _as_read(part: pd.DataFrame) -> pd.DataFrame:
    """Part map of small columns gathered as they are (``collect_parts`` reads only those)."""
    return part


@lru_cache(maxsize=2)
def _load_unigrams(path: str, mtime_ns: int, smoothing: float) -> dict[str, UnigramModel]:
    """Cached per file version, like the fastText models."""
    counts = pd.read_parquet(path)
    return {lang: UnigramModel(dict(zip(g["token"], g["n"].astype(int), strict=True)), smoothing)
            for lang, g in counts.groupby("language", sort=False)}


def _unigram_models(path: Path, smoothing: float) -> dict[str, UnigramModel]:
    return _load_unigrams(str(path), path.stat().st_mtime_ns, smoothing)


def _heuristics_part(part: pd.DataFrame, cfg: FilterConfig, router: Path | None, unigrams: Path) -> pd.DataFrame:
    """Part map: every document with its ``domain``, cleaned ``text``, ``drop_reason`` ('' = kept),
    ``heuristic_score`` and ``lines_removed``. Dropped ones stay, for the counts and the audit, and so
    that these parts, numbered in the input's order, keep it: the
    sample's rows come back from them in input order."""
    part = typed_docs(part)
    part["domain"] = route(part["text"].tolist(), part["n_code_blocks"].tolist(), part["n_math"].tolist(),
                           part["page_domain"].tolist(), router, cfg.routing, cfg.quality.fasttext_max_chars)
    thresholds = LanguageThresholds(cfg.heuristics, cfg.heuristics_by_language, cfg.heuristics_by_domain)
    cleaner = LineRepetitionCleaner(thresholds)
    filters = default_filters(thresholds, _unigram_models(unigrams, cfg.heuristics.kl_smoothing))
    allowed = set(cfg.languages)
    texts, removed, reasons, hscores = [], [], [], []
    for doc in part[["text", "language", "language_score", "domain"]].to_dict("records"):
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
    return part.assign(text=texts, drop_reason=reasons, heuristic_score=hscores, lines_removed=removed)


def _embeddings(column: pd.Series) -> np.ndarray:
    """(n, EMBED_DIM) float32 from a column of embeddings stored as bytes."""
    return np.frombuffer(b"".join(column), dtype=np.float32).reshape(len(column), EMBED_DIM)


def _score_part(part: pd.DataFrame, cfg: FilterConfig, model: Path) -> pd.DataFrame:
    """Part map: ``quality_fasttext`` and the MiniLM embedding (``emb``, float32 bytes) of every kept
    document; dropped ones stay (NaN, b''), so these parts keep the input's order and the audit."""
    q = cfg.quality
    kept = np.flatnonzero((part["drop_reason"] == "").to_numpy())
    texts = part["text"].iloc[kept].tolist()
    scores = np.full(len(part), np.nan)
    scores[kept] = fasttext_probs(model, texts, q.fasttext_max_chars)["hq"]
    emb = [b""] * len(part)
    for i, row in zip(kept, embed(texts, q.encoder_max_tokens, q.encoder_batch_size), strict=True):
        emb[i] = row.tobytes()
    return part.assign(quality_fasttext=scores, emb=emb)


def _judge(part: pd.DataFrame, cfg: FilterConfig, classifiers: Path) -> pd.DataFrame:
    """The part's kept documents with ``quality_transformer``, ``topic`` and the threshold's
    ``drop_reason`` ('' = kept)."""
    kept = part[part["drop_reason"] == ""].reset_index(drop=True)
    emb = _embeddings(kept["emb"])
    with np.load(classifiers) as clf:
        head = {"w": clf["quality_head_w"], "b": float(clf["quality_head_b"][0])}
        kept["quality_transformer"] = head_scores(head, emb)
        kept["topic"] = assign_topics(emb, clf["topic_names"].tolist(), clf["topic_centroids"], cfg.topics)
    combined = 0.5 * (kept["quality_fasttext"] + kept["quality_transformer"])
    low = (combined < cfg.quality_threshold) & kept["domain"].isin(cfg.quality_domains)
    kept.loc[low, "drop_reason"] = BELOW_THRESHOLD
    return kept


def _judged_columns(part: pd.DataFrame, cfg: FilterConfig, classifiers: Path) -> pd.DataFrame:
    """Part map: the metadata's columns of the part's kept documents, judged."""
    return _judge(part, cfg, classifiers)[["language", "domain", "topic", "quality_fasttext", "quality_transformer",
                                           "drop_reason"]]


def _dropped_samples(dropped: pd.DataFrame, k: int, chars: int) -> pd.DataFrame:
    """The first ``k`` dropped documents of each reason, their text cut to ``chars``."""
    if dropped.empty or k == 0:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in _AUDIT_COLUMNS})
    sample = dropped.groupby("drop_reason", sort=True, group_keys=False).head(k)[_AUDIT_COLUMNS].copy()
    sample["text"] = sample["text"].str.slice(0, chars)
    return sample.reset_index(drop=True)


def _audit_part(part: pd.DataFrame, cfg: FilterConfig, classifiers: Path) -> pd.DataFrame:
    """Part map: the part's first dropped documents of each reason (the heuristics' and the threshold's)."""
    judged = _judge(part, cfg, classifiers)
    dropped = pd.concat([part[part["drop_reason"] != ""], judged[judged["drop_reason"] != ""]], ignore_index=True)
    return _dropped_samples(dropped, cfg.dropped_samples_per_reason, cfg.dropped_sample_chars)


def _audit_sample(rows: pd.DataFrame, cfg: FilterConfig) -> pd.DataFrame:
    """The audit file from the parts' audit rows: the first documents of each reason, the
    heuristics' drops before the threshold's, each in input order."""
    if len(rows):
        rows = rows.iloc[np.argsort(rows["drop_reason"].eq(BELOW_THRESHOLD).to_numpy(), kind="stable")]
    return _dropped_samples(rows, cfg.dropped_samples_per_reason, cfg.dropped_sample_chars)


def _output_part(part: pd.DataFrame, cfg: FilterConfig, classifiers: Path) -> pd.DataFrame:
    """Part map: the part's documents that pass the threshold, with the input's and the added columns."""
    judged = _judge(part, cfg, classifiers)
    docs = judged[judged["drop_reason"] == ""]
    base = [c for c in docs.columns if c not in (*ADDED_COLUMNS, *_WORK_COLUMNS)]
    return docs[base + list(ADDED_COLUMNS)].reset_index(drop=True)


# --- global fits (driver) -----------------------------------------------------------------------

def _sample_unigram_counts(docs: pd.DataFrame) -> pd.DataFrame:
    """Per-language token counts of the sample (language, token, n): the KL filter's unigram models."""
    rows = []
    for lang, group in docs.groupby("language", sort=False):
        rows += [(lang, tok, n) for tok, n in unigram_counts(group["text"].tolist()).items()]
    return pd.DataFrame(rows, columns=["language", "token", "n"])


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


def _nested(reasons: Counter) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for reason, n in sorted(reasons.items()):
        group, _, detail = reason.partition(":")
        out[group][detail or group] = int(n)
    return dict(out)


@dataclass
class _FastText:
    """The fastText quality step's training set, model and holdout accuracy."""

    texts: list[str]
    labels: list[str]
    label_counts: dict[str, int]
    model: Path
    holdout_accuracy: float


@dataclass
class _QualityHead:
    head: dict[str, Any]
    n_kept: int  # kept documents the head was fitted on
    n_negatives: int  # fastText negatives it was fitted on


def _quality_fasttext(heuristics: list[Path], cutoff: int | None, cfg: FilterConfig, scratch: Path,
                      ctx: StageContext) -> _FastText:
    """Train the fastText quality model on the sample as the heuristics left it: its kept documents
    vs. its dropped ones (of ``negative_drop_groups``) and degraded copies."""
    q = cfg.quality
    docs = _collect_sample(heuristics, ["id", "text", "source", "heuristic_score", "drop_reason"], cutoff, cfg, ctx,
                           groups=("", *q.negative_drop_groups))
    kept = docs[docs["drop_reason"] == ""]
    texts, labels, label_counts = quality_training_set(
        kept["text"].tolist(), kept["source"].tolist(), kept["heuristic_score"].tolist(),
        docs.loc[docs["drop_reason"] != "", "text"].tolist(), q)
    model, accuracy = _holdout_accuracy(texts, labels, scratch, q)
    return _FastText(texts, labels, label_counts, model, accuracy)


def _quality_head(kept: pd.DataFrame, ft: _FastText, cfg: FilterConfig) -> _QualityHead:
    """Fit the logistic head on the embeddings of the sample's kept documents (``kept``: their
    quality_fasttext, heuristic_score and emb) and of the fastText negatives."""
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
    x_fit = np.vstack([_embeddings(kept["emb"].iloc[pos_idx]),
                       embed(neg_texts, q.encoder_max_tokens, q.encoder_batch_size)])
    head = fit_head(x_fit, np.concatenate([teacher_pos, teacher_neg]), q)
    return _QualityHead(head, int(len(pos_idx)), int(n_neg))


def _quality_meta(judged: pd.DataFrame, docs: pd.DataFrame, ft: _FastText, qh: _QualityHead) -> dict[str, Any]:
    corr = (float(np.corrcoef(judged["quality_fasttext"], judged["quality_transformer"])[0, 1]) if len(judged) > 2
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


# --- the stage ----------------------------------------------------------------------------------

def curate_parts(parts: list[Path], out: Path, cfg: FilterConfig, work: Path, ctx: StageContext) -> dict[str, Any]:
    """Every sub-stage over the input ``parts``: writes ``out/docs.parquet`` (from the part maps),
    the audit sample and the classifiers; ``work`` holds the models and the intermediate parts.
    Returns the stage metadata."""
    steps = Steps("filtered_corpus", ctx.log)
    n_docs = sum(pq.ParquetFile(p).metadata.num_rows for p in parts)
    if n_docs == 0:
        raise ValueError("filtered_corpus: no input documents")
    run = {"executor": cfg.executor, "num_cpus": ctx.num_cpus}
    with steps.step("sample") as s:
        cutoff, sampled = fit_sample(parts, n_docs, cfg, ctx)
        n_sampled = len(sampled)
        s.count(docs=n_docs, sampled=n_sampled)
    with steps.step("route") as s:
        router = train_router(sampled["text"].tolist(), sampled["n_code_blocks"].tolist(), sampled["n_math"].tolist(),
                              sampled["page_domain"].tolist(), work / "router_fasttext.bin", cfg.quality)
        s.count(trained=int(router is not None))
    with steps.step("unigrams") as s:
        unigrams = work / "unigrams.parquet"
        counts = _sample_unigram_counts(sampled)
        counts.to_parquet(unigrams, index=False)
        s.count(languages=counts["language"].nunique())
    del sampled, counts  # the sample's texts are not needed again
    with steps.step("heuristics") as s:
        heuristics = map_parts(partial(_heuristics_part, cfg=cfg, router=router, unigrams=unigrams), parts,
                               work / "heuristics", **run)
        small = collect_parts(_as_read, heuristics, **run,
                              columns=["language", "domain", "drop_reason", "lines_removed"])
        n_kept = int((small["drop_reason"] == "").sum())
        lines_removed = int(small["lines_removed"].sum())
        s.count(kept=n_kept, dropped=n_docs - n_kept, lines_removed=lines_removed,
                **{d: int(n) for d, n in Counter(small["domain"]).items()})
    ctx.log(f"filtered_corpus: languages {dict(Counter(small['language']).most_common(8))}, "
            f"domains {dict(Counter(small['domain']))}")
    if n_kept == 0:
        raise ValueError(f"filtered_corpus: the heuristics dropped all {n_docs} documents: "
                         f"{Counter(small['drop_reason'])}")
    with steps.step("quality_fasttext_and_embed") as s:
        ft = _quality_fasttext(heuristics, cutoff, cfg, work, ctx)
        scored = map_parts(partial(_score_part, cfg=cfg, model=ft.model), heuristics, work / "scored", **run)
        shutil.rmtree(work / "heuristics")  # the scored parts hold everything later steps read: one copy on disk
        s.count(train_docs=len(ft.texts), scored=n_kept)
    with steps.step("quality_transformer") as s:
        kept = _collect_sample(scored, ["id", "quality_fasttext", "heuristic_score", "emb", "drop_reason"], cutoff, cfg,
                               ctx, groups=("",))
        qh = _quality_head(kept, ft, cfg)
        s.count(kept=qh.n_kept, negatives=qh.n_negatives)
    with steps.step("topics") as s:
        q = cfg.quality
        names, centroids = topic_centroids(lambda xs: embed(xs, q.encoder_max_tokens, q.encoder_batch_size))
        s.count(topics=len(names))
    classifiers = {"quality_head_w": qh.head["w"], "quality_head_b": np.array([qh.head["b"]]),
                   "topic_names": np.array(names), "topic_centroids": centroids}
    np.savez(work / CLASSIFIERS_FILE, **classifiers)
    judge = {"cfg": cfg, "classifiers": work / CLASSIFIERS_FILE}
    with steps.step("quality_threshold") as s:
        map_parts(partial(_output_part, **judge), scored, out, **run)
        judged = collect_parts(partial(_judged_columns, **judge), scored, **run,
                               columns=["language", "domain", "quality_fasttext", "emb", "drop_reason"])
        audit = collect_parts(partial(_audit_part, **judge), scored, **run,
                              columns=[*_AUDIT_COLUMNS, "quality_fasttext", "emb"])
        docs = judged[judged["drop_reason"] == ""]
        s.count(kept=len(docs), dropped=len(judged) - len(docs))
    _audit_sample(audit, cfg).to_parquet(out / DROPPED_FILE, index=False)
    np.savez(out / CLASSIFIERS_FILE, **classifiers)
    reasons = Counter(small.loc[small["drop_reason"] != "", "drop_reason"])
    reasons.update(judged.loc[judged["drop_reason"] != "", "drop_reason"])
    total = steps.total_seconds
    return {
        "docs_in": n_docs,
        "docs_out": int(len(docs)),
        "dropped_by_reason": _nested(reasons),
        "lines_removed_line_repetition": lines_removed,
        "per_language": dict(Counter(docs["language"]).most_common()),
        "per_domain": dict(Counter(docs["domain"]).most_common()),
        "per_topic": dict(Counter(docs["topic"]).most_common()),
        "quality": _quality_meta(judged, docs, ft, qh),
        "router_trained": router is not None,
        "sampled_docs": n_sampled,
        "executor": cfg.executor,
        "steps": steps.summary(),
        "total_s": round(total, 3),
        "docs_per_s": round(n_docs / total, 2),
    }


def run_filtered_corpus(cfg: FilterConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    """Stream ``deduped_docs/docs.parquet`` through the sub-stages; write the curated
    ``docs.parquet``, the audit sample of dropped documents and the small classifiers; return
    counts, per-step seconds and counts, and docs/s."""
    parts = doc_parts(inputs["deduped_docs"])
    require_columns(parts)
    ctx.log(f"filtered_corpus: {len(parts)} parts, fits on a sample of at most {cfg.sample_docs} documents, "
            f"executor={cfg.executor}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(ctx.work_dir) if ctx.work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        meta = curate_parts(parts, Path(out), cfg, work, ctx)
    ctx.log(f"filtered_corpus: kept {meta['docs_out']}/{meta['docs_in']} at {meta['docs_per_s']} docs/s; "
            f"dropped {meta['dropped_by_reason']}")
    return meta
