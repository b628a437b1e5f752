"""The ``data_mix`` stage: knowledge downsampling, per-domain token streams, and a mix chosen by
small-model experiments (recipe: "Determining the data mix", "Annealing Data").

1. Knowledge classification and downsampling: every topic (the curation stage's ``topic`` label)
   is capped at ``topic_max_share`` of the documents, so over-represented categories of the web
   shrink and the rest is kept whole (water-filling: the cap is the largest count per topic such
   that no capped topic exceeds the share of the downsampled corpus).
2. Domains: non-English documents form ``multilingual``; English ones keep their routed domain
   (``general``, ``code``, ``math``). Each domain is split into train/validation documents and
   tokenized into a stream with ``<|end_of_text|>`` after each document (``factory.train.token_shards``).
   A ``high_quality`` stream (top quality scores over all domains) serves annealing.
3. Mix experiments: small models are trained with the one trainer on each candidate mix (the
   paper's 50/25/17/8 general/math/code/multilingual, adapted to the domains present, plus the
   configured alternatives and the natural token proportions), and scored by validation NLL (mean
   over domains or one target domain). With two or more model sizes, each mix's score is fitted
   as a + b·ln N and extrapolated to a larger size, as the recipe predicts large-model performance
   per mix from small models; the lowest (predicted) loss wins.

Artifact: ``mix.json`` (chosen weights, candidates, experiment losses, token counts),
``topics.json`` (downsampling report) and ``tokens/<stream>/<split>-NNNNN.npy`` shards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.core.steps import Steps
from factory.eval.perplexity import val_losses
from factory.model.flavors import model_args
from factory.model.tokenizer_files import TokenizerInfo, tokenizer_info
from factory.train.config import TrainConfig
from factory.train.lm_runs import map_runs, mix_data, normalize, train_lm
from factory.train.stage_training import log_history
from factory.train.token_shards import HIGH_QUALITY, MIX_FILE, encode_documents, save_stream

DOMAINS = ("general", "code", "math", "multilingual")
# Recipe: ~50% general knowledge, 25% math and reasoning, 17% code, 8% multilingual tokens.
LLAMA3_MIX = {"general": 0.50, "math": 0.25, "code": 0.17, "multilingual": 0.08}
NATURAL = "natural"


class DataMixConfig(StageConfig):
    """Topic downsampling, tokenized domain streams, and the mix experiments that pick the mix."""

    topic_max_share: float = Field(0.3, description="Largest share of documents one topic may keep after downsampling.")
    topic_min_keep: float = Field(
        0.7, description="Fraction of an over-represented topic always kept: downsampling, never removal of a topic.")
    val_fraction: float = Field(0.05, description="Share of each domain's documents held out for validation.")
    shard_tokens: int = Field(1_000_000, description="Tokens per .npy shard.")
    high_quality_fraction: float = Field(
        0.2, description="Top share of documents by quality forming the high_quality stream (the annealing stream).")
    quality_column: str = Field("quality_transformer", description="Quality score column ranking documents.")
    candidates: dict[str, dict[str, float]] = Field(
        default_factory=lambda: {"llama3": dict(LLAMA3_MIX)},
        description="Candidate mixes: name -> domain weights (renormalized over the domains present).")
    include_natural: bool = Field(True, description="Also try the natural mix (weights = train token counts).")
    experiment_flavors: list[str] = Field(
        ["debug", "nano"], description="Model flavors of the mix experiments (>= 2 to extrapolate).")
    predict_flavor: str = Field(
        "", description="Flavor whose size each mix's loss is extrapolated to (needs >= 2 experiment flavors).")
    seq_len: int = Field(64, description="Sequence length of the mix experiments.")
    rope_theta: float = Field(500_000.0, description="RoPE base frequency of the experiment models.")
    train: TrainConfig = Field(
        TrainConfig(steps=100, batch_size=16, lr=3.0e-3, log_every=50, schedule={"warmup_steps": 10, "min_lr": 3.0e-4}),
        description="Run settings of every mix experiment.")
    eval_windows: int = Field(16, description="Validation windows per domain when scoring a mix.")
    target: str = Field("mean", description="Score: 'mean' over domains or one domain's validation NLL.")
    seed: int = Field(0, description="Seed of downsampling and the train/validation split.")


# ---------------------------------------------------------------------------------------------
# Knowledge downsampling and domains


def topic_caps(counts: Mapping[str, int], max_share: float) -> tuple[dict[str, int], float]:
    """Documents kept per topic so that no topic exceeds ``max_share`` of the kept corpus.

    Returns (kept count per topic, effective share). A share below 1 / n_topics is unreachable and
    is raised to it. The cap k is the largest count with k <= share * sum(min(c, k)).
    """
    if not counts:
        return {}, max_share
    share = max(max_share, 1.0 / len(counts))
    values = np.array(list(counts.values()))
    lo, hi = 1, int(values.max())
    while lo < hi:  # largest feasible k by bisection: feasibility is monotone in k
        mid = (lo + hi + 1) // 2
        if mid <= share * np.minimum(values, mid).sum() + 1e-9:
            lo = mid
        else:
            hi = mid - 1
    return {t: min(c, lo) for t, c in counts.items()}, share


def downsample_topics(df: pd.DataFrame, max_share: float, seed: int,
                      min_keep: float = 0.0) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop random documents of over-represented topics down to their cap (``topic_caps``), keeping
    at least ``min_keep`` of each topic (a corpus dominated by one topic is thinned, not emptied)."""
    if "topic" not in df.columns:
        raise ValueError("filtered_corpus has no 'topic' column to downsample by")
    topics = df["topic"].fillna("unknown").astype(str)
    counts = topics.value_counts().to_dict()
    caps, share = topic_caps(counts, max_share)
    caps = {t: max(cap, int(np.ceil(min_keep * counts[t]))) for t, cap in caps.items()}
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(df), dtype=bool)
    for topic, cap in caps.items():
        idx = np.flatnonzero(topics.to_numpy() == topic)
        keep[rng.choice(idx, size=cap, replace=False) if cap < len(idx) else idx] = True
    report = {"max_share": max_share, "effective_max_share": share, "min_keep": min_keep, "before": counts,
              "after": {t: int(c) for t, c in caps.items()}, "dropped_docs": int((~keep).sum())}
    return df[keep].reset_index(drop=True), report


def assign_domains(df: pd.DataFrame) -> pd.Series:
    """multilingual for non-English documents, else the routed domain (unknown domains -> general)."""
    lang = df["language"].fillna("en").astype(str) if "language" in df.columns else pd.Series("en", index=df.index)
    dom = df["domain"].fillna("general").astype(str) if "domain" in df.columns else pd.Series("general", index=df.index)
    dom = dom.where(dom.isin(["general", "code", "math"]), "general")
    return dom.where(lang == "en", "multilingual")


def split_documents(df: pd.DataFrame, val_fraction: float, seed: int) -> pd.Series:
    """'train' / 'validation' per document, per domain: at least one of each when a domain has two."""
    split = pd.Series("train", index=df.index)
    rng = np.random.default_rng(seed)
    for _, idx in df.groupby("mix_domain").groups.items():
        idx = np.array(list(idx))
        if len(idx) < 2:
            continue
        n_val = min(len(idx) - 1, max(1, int(round(val_fraction * len(idx)))))
        split.loc[rng.permutation(idx)[:n_val]] = "validation"
    return split


def quality_scores(df: pd.DataFrame, column: str) -> pd.Series | None:
    for col in (column, "quality_transformer", "quality_fasttext"):
        if col in df.columns:
            return df[col].astype(float).fillna(-np.inf)
    return None


# ---------------------------------------------------------------------------------------------
# Candidate mixes and selection


def adapt_mix(weights: Mapping[str, float], available: set[str]) -> dict[str, float] | None:
    """A candidate restricted to the domains present, renormalized; None if nothing remains."""
    kept = {k: w for k, w in weights.items() if k in available and w > 0}
    return normalize(kept) if kept else None


def extrapolate(params: list[float], scores: list[float], target_params: float) -> float:
    """Fit score = a + b·ln N through the experiment sizes; the score predicted at ``target_params``."""
    b, a = np.polyfit(np.log(params), scores, 1)
    return float(a + b * np.log(target_params))


def experiment_rows(results: Mapping[str, Mapping[str, Any]], target: str) -> list[dict[str, Any]]:
    """One row per mix experiment (candidate x flavor): its size, final train loss and validation
    loss on ``target``, beside the candidate's predicted loss when there is one."""
    return [{"candidate": name, "flavor": run["flavor"], "non_embedding_params": run["non_embedding_params"],
             "train_loss": round(run["train_loss"], 5), f"val_loss_{target}": round(run["val_loss"][target], 5),
             "predicted": entry.get("predicted")}
            for name, entry in results.items() for run in entry["runs"]]


def choose_mix(results: Mapping[str, Mapping[str, Any]]) -> str:
    """The candidate with the lowest ``predicted`` score (or ``score`` when nothing was predicted)."""
    if not results:
        raise ValueError("no mix experiment results to choose from")
    return min(results, key=lambda n: results[n].get("predicted", results[n]["score"]))


def mix_experiment(item: dict[str, Any], train_streams: Mapping[str, np.ndarray],
                   val_streams: Mapping[str, np.ndarray], settings: dict[str, Any]) -> dict[str, Any]:
    """Train one small model on one candidate mix and return its validation losses (a grid task)."""
    args = model_args(item["flavor"], settings["vocab_size"], rope_theta=settings["rope_theta"],
                      max_seq_len=settings["seq_len"])
    data = mix_data(train_streams, item["weights"], settings["seq_len"], settings["eot_id"], settings["train"].seed)
    result = train_lm(settings["train"], args, data, log=lambda _: None)
    val = val_losses(result.model, val_streams, settings["seq_len"], settings["eot_id"], settings["eval_windows"])
    return {**item, "non_embedding_params": result.model.num_params(exclude_embeddings=True),
            "train_loss": result.final.get("loss"), "val_loss": val, "wall_s": round(result.wall_s, 2),
            "history": result.history}


# ---------------------------------------------------------------------------------------------
# The stage


def _documents(cfg: DataMixConfig, docs: pd.DataFrame, ctx: StageContext) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Non-empty documents, topic-downsampled, with their ``mix_domain`` and train/validation ``split``."""
    n_in = len(docs)
    docs = docs[docs["text"].fillna("").str.len() > 0].reset_index(drop=True)
    docs, topics = downsample_topics(docs, cfg.topic_max_share, cfg.seed, cfg.topic_min_keep)
    ctx.log(f"topic downsampling: {n_in} -> {len(docs)} documents (cap {topics['effective_max_share']:.2f})")
    docs["mix_domain"] = assign_domains(docs)
    docs["split"] = split_documents(docs, cfg.val_fraction, cfg.seed)
    return docs, topics


def _token_streams(cfg: DataMixConfig, docs: pd.DataFrame, info: TokenizerInfo, out: Path
                   ) -> tuple[dict[str, dict[str, np.ndarray]], dict[str, dict[str, Any]]]:
    """Tokenize every domain (and the high_quality stream) per split and save the shards:
    (split -> stream -> token ids, per-stream report)."""
    streams: dict[str, dict[str, np.ndarray]] = {"train": {}, "validation": {}}
    # iter(): dict() would take the GroupBy for a mapping (it has a .keys attribute)
    groups: dict[str, pd.DataFrame] = dict(iter(docs.groupby("mix_domain")))
    quality = quality_scores(docs, cfg.quality_column)
    if quality is not None and cfg.high_quality_fraction > 0:
        top = quality >= quality.quantile(1.0 - cfg.high_quality_fraction)
        groups[HIGH_QUALITY] = docs[top]
    tokens_report: dict[str, dict[str, Any]] = {}
    for name, group in sorted(groups.items()):
        parts = {split: encode_documents(info.tokenizer, group[group["split"] == split]["text"].tolist(), info.eot_id)
                 for split in ("train", "validation")}
        how = "documents"
        if len(parts["validation"]) < cfg.seq_len:
            # Too few documents to hold one out: hold out the tail of the domain's token stream instead.
            ids = np.concatenate([parts["train"], parts["validation"]])
            cut = len(ids) - max(cfg.seq_len, int(round(cfg.val_fraction * len(ids))))
            parts, how = {"train": ids[:max(cut, 0)], "validation": ids[max(cut, 0):]}, "tokens"
        tokens_report[name] = {"split_by": how, "docs": int(len(group))}
        for split, ids in parts.items():
            if len(ids):
                save_stream(ids, out, name, split, cfg.shard_tokens)
                streams[split][name] = ids
            tokens_report[name][f"{split}_tokens"] = int(len(ids))
    return streams, tokens_report


def _mix_domains(cfg: DataMixConfig, streams: dict[str, dict[str, np.ndarray]],
                 tokens_report: dict[str, dict[str, Any]]) -> set[str]:
    """The domains that fill a training window and a validation window (only they take part in the mix)."""
    available = {d for d in DOMAINS if len(streams["train"].get(d, ())) > cfg.seq_len
                 and len(streams["validation"].get(d, ())) >= cfg.seq_len}
    if not available:
        raise ValueError(f"no domain has enough tokens for a window of {cfg.seq_len}: {tokens_report}")
    if cfg.target != "mean" and cfg.target not in available:
        raise ValueError(f"mix target {cfg.target!r} is not an available domain {sorted(available)}")
    return available


def _candidates(cfg: DataMixConfig, available: set[str], train_streams: Mapping[str, np.ndarray]
                ) -> tuple[dict[str, dict[str, float]], list[str]]:
    """The configured candidates adapted to the available domains (plus the natural mix): (candidates, skipped)."""
    candidates: dict[str, dict[str, float]] = {}
    skipped = []
    for name, weights in cfg.candidates.items():
        adapted = adapt_mix(weights, available)
        if adapted is None:
            skipped.append(name)
        else:
            candidates[name] = adapted
    if cfg.include_natural:
        candidates[NATURAL] = normalize({d: float(len(train_streams[d])) for d in sorted(available)})
    if not candidates:
        raise ValueError(f"no candidate mix uses the available domains {sorted(available)}")
    return candidates, skipped


def _experiments(cfg: DataMixConfig, candidates: dict[str, dict[str, float]], available: set[str],
                 streams: dict[str, dict[str, np.ndarray]], info: TokenizerInfo,
                 ctx: StageContext) -> list[dict[str, Any]]:
    """Train a small model per candidate and experiment flavor (grid tasks); their results."""
    train_streams = {d: streams["train"][d] for d in sorted(available)}
    val_streams = {d: streams["validation"][d] for d in sorted(available)}
    settings = {"vocab_size": info.vocab_size, "rope_theta": cfg.rope_theta, "seq_len": cfg.seq_len,
                "eot_id": info.eot_id, "train": cfg.train, "eval_windows": cfg.eval_windows}
    items = [{"candidate": n, "weights": w, "flavor": f} for n, w in candidates.items() for f in cfg.experiment_flavors]
    ctx.log(f"mix experiments: {len(candidates)} candidates x {len(cfg.experiment_flavors)} sizes")
    runs = map_runs(mix_experiment, items, train_streams=train_streams, val_streams=val_streams, settings=settings)
    for run in runs:  # each experiment's curves join the stage's, as mix/<candidate>/<flavor>/<metric>
        log_history(f"mix/{run['candidate']}/{run['flavor']}", run.pop("history"), ctx)
    return runs


def _score_candidates(cfg: DataMixConfig, candidates: dict[str, dict[str, float]], runs: list[dict[str, Any]],
                      vocab_size: int, ctx: StageContext) -> tuple[dict[str, dict[str, Any]], int | None]:
    """Each candidate's score (its largest experiment's loss) and, with two or more sizes and a
    ``predict_flavor``, its loss extrapolated to that size: (results, the size predicted at)."""
    results: dict[str, dict[str, Any]] = {}
    target_params = None
    if cfg.predict_flavor and len(cfg.experiment_flavors) >= 2:
        from factory.model.llama import Transformer

        target_params = Transformer(model_args(cfg.predict_flavor, vocab_size)).num_params(exclude_embeddings=True)
    for name, weights in candidates.items():
        mine = sorted((r for r in runs if r["candidate"] == name), key=lambda r: r["non_embedding_params"])
        scores = [r["val_loss"][cfg.target] for r in mine]
        entry: dict[str, Any] = {"weights": weights, "score": scores[-1],
                                 "runs": [{k: r[k] for k in ("flavor", "non_embedding_params", "train_loss",
                                                             "val_loss", "wall_s")} for r in mine]}
        if target_params is not None:
            entry["predicted"] = round(extrapolate([r["non_embedding_params"] for r in mine], scores, target_params), 5)
        results[name] = entry
        ctx.log(f"mix {name}: score {entry['score']:.4f}" + (f", predicted {entry['predicted']:.4f}"
                                                                if "predicted" in entry else ""))
    return results, target_params


def run_data_mix(cfg: DataMixConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    steps = Steps("data_mix", ctx.log)
    info = tokenizer_info(inputs["tokenizer"])
    with steps.step("downsample") as s:
        docs = pd.read_parquet(inputs["filtered_corpus"] / "docs.parquet")
        s.count(docs_in=len(docs))
        docs, topics = _documents(cfg, docs, ctx)
        s.count(docs_out=len(docs), topic_dropped_docs=topics["dropped_docs"])
    with steps.step("tokenize") as s:
        streams, tokens_report = _token_streams(cfg, docs, info, out)
        s.count(streams=len(tokens_report), train_tokens=sum(r["train_tokens"] for r in tokens_report.values()),
                validation_tokens=sum(r["validation_tokens"] for r in tokens_report.values()))
    available = _mix_domains(cfg, streams, tokens_report)
    ctx.log(f"token streams: {tokens_report}; mix domains {sorted(available)}")
    candidates, skipped = _candidates(cfg, available, streams["train"])
    with steps.step("experiments") as s:
        runs = _experiments(cfg, candidates, available, streams, info, ctx)
        s.count(candidates=len(candidates), skipped_candidates=len(skipped), runs=len(runs))
    with steps.step("select") as s:
        results, target_params = _score_candidates(cfg, candidates, runs, info.vocab_size, ctx)
        chosen = choose_mix(results)
        s.count(predicted=sum("predicted" in r for r in results.values()))
    mix = {
        "weights": candidates[chosen],
        "chosen": chosen,
        "target": cfg.target,
        "predicted_at_params": target_params,
        "candidates": results,
        "skipped_candidates": skipped,
        "streams": tokens_report,
        "domains": sorted(available),
        "eot_id": info.eot_id,
        "vocab_size": info.vocab_size,
    }
    (out / MIX_FILE).write_text(json.dumps(mix, indent=1))
    (out / "topics.json").write_text(json.dumps(topics, indent=1))
    return {
        "documents": len(docs),
        "topic_dropped_docs": topics["dropped_docs"],
        "tokens_per_stream": {k: v["train_tokens"] + v["validation_tokens"] for k, v in tokens_report.items()},
        "chosen_mix": chosen,
        "weights": candidates[chosen],
        "experiment_losses": {n: r.get("predicted", r["score"]) for n, r in results.items()},
        "experiments": experiment_rows(results, cfg.target),
        "skipped_candidates": skipped,
        "steps": steps.summary(),
    }
