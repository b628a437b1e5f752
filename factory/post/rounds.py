"""The post-training rounds: ``sft_round_k`` and ``dpo_round_k`` (recipe: "Post-training Data",
"SFT Data", "Data Processing and Quality Control"; Llama 3 runs several rounds of SFT then DPO).

``sft_round_k``: rejection sampling from the latest policy (round 1: the annealed checkpoint;
round k: ``dpo_round_{k-1}``) with the round's reward model (``factory.post.round_assets``)
picking the best of K samples, plus synthetic capability data, cleaned by QC, plus a share of
pre-training text; then SFT of the PRE-TRAINED checkpoint (the recipe fine-tunes pre-trained
checkpoints each round) with loss on the assistant's tokens (and on every pre-training token), once
per data-order seed, the runs averaged weight by weight when there are several.

``dpo_round_k``: fresh on-policy pairs from the round's SFT model annotated by the annotator, plus
the round's fresh preference data (``preference_data`` / ``preference_round_k``); DPO with
formatting tokens masked and the recipe's NLL regularizer, once per configured run (seed, beta),
each starting from and referenced to the SFT model.

Artifact layouts (checkpoint_io): ``sft_round_k/`` holds the SFT model and ``sft_data.jsonl``;
``dpo_round_k/runs/run_i/`` holds each DPO run, and ``dpo_round_k/`` itself the run with the best
dev task accuracy (the policy the next round samples from), plus ``onpolicy_preferences.jsonl``.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.chat_format import load_chat_format
from factory.post.annotator import AnnotatorConfig, annotate_extremes
from factory.post.averaging import average_states
from factory.post.encode import preference_example, sft_example
from factory.post.preference import ranking_counts, read_rankings
from factory.post.qc import QCConfig, clean
from factory.post.rejection import Candidate, rejection_sample
from factory.post.round_assets import policy_key, preference_key, reward_key
from factory.post.sampling import SamplingConfig, load_policy, sample_responses
from factory.post.sft_data import SOURCES, pretraining_examples, rejection_records, source_counts, synthetic_records
from factory.post.task_accuracy import evaluate, heldout_prompts
from factory.post.tasks import TASK_MIX, sample_prompts
from factory.train.config import TrainConfig
from factory.train.data import Examples
from factory.train.losses import IGNORE
from factory.train.stage_training import train_stage
from factory.train.trainer import describe

SFT_DATA_FILE = "sft_data.jsonl"
ONPOLICY_FILE = "onpolicy_preferences.jsonl"
RUNS_DIR = "runs"


class SFTConfig(StageConfig):
    """One round's rejection sampling, synthetic data, QC and supervised fine-tuning."""

    task_weights: dict[str, float] = Field(
        default_factory=lambda: dict(TASK_MIX),
        description="Relative frequency of each task family in the round's prompts.")
    rs_prompts: int = Field(200, description="Training prompts answered by rejection sampling.")
    rs_samples: int = Field(10, ge=1, description="K: samples per prompt from the latest policy (recipe: 10-30).")
    sampling: SamplingConfig = Field(
        SamplingConfig(temperature=0.8, top_p=0.95, batch_size=64), description="Decoding of the rejection samples.")
    synthetic_examples: int = Field(
        4000, description="Verified-correct synthetic capability examples added to the mix.")
    steer_rejection_sampling: bool = Field(
        True, description="Sample under each family's system prompt; SFT trains on the dialog without it.")
    system_prompt_share: float = Field(
        0.25, ge=0.0, le=1.0,
        description="Share of synthetic examples that open with their family's system prompt (teaches the steer).")
    qc: QCConfig = Field(default_factory=QCConfig, description="Rule-based cleaning of the mix.")
    pretrain_fraction: float = Field(
        0.3, ge=0.0, lt=1.0,
        description="Share of the SFT loss tokens that are pre-training text (keeps language modelling).")
    # Batches pad to their longest example: windows as long as a dialog (~30-60 tokens) keep the padding
    # low (128-token windows made the demo's SFT ~3x slower).
    pretrain_seq_len: int = Field(48, ge=8, description="Tokens per pre-training window (capped at the context).")
    train: TrainConfig = Field(
        TrainConfig(steps=800, batch_size=64, lr=2.0e-3, log_every=100,
                    schedule={"warmup_steps": 50, "min_lr": 1.0e-4}),
        description="Optimization of each SFT run (its seed is the run's).")
    seeds: list[int] = Field(
        [0], min_length=1, description="Data-order seed of each SFT run; two or more runs are averaged.")
    # 1,000 dev prompts: a 95% interval of about +-3 points (200 gave +-7, more than a round's gain).
    eval_prompts: int = Field(1000, description="Dev-split prompts for the task accuracy after SFT (the round gate's).")
    eval_seed: int = Field(0, description="Seed of the held-out prompts (same for every stage to compare).")
    seed: int = Field(0, description="Seed of prompts and sampling; the round number is added to it.")


class DPORunConfig(StageConfig):
    """One DPO run of a round; the round's runs are averaged into the chat model."""

    seed: int = Field(description="Seed of the run's data order.")
    beta: float = Field(description="DPO temperature: scale of the implicit reward.")


class DPOConfig(StageConfig):
    """One round's on-policy preference collection and DPO runs."""

    task_weights: dict[str, float] = Field(
        default_factory=lambda: dict(TASK_MIX),
        description="Relative frequency of each task family among on-policy prompts.")
    # Measured on the demo's round 1 (1,000 dev prompts, SFT 0.504): 300 prompts x 2 samples -> 0.504-0.510;
    # 1,500 x 4 (best vs worst) -> 0.522. Stronger steps hurt (lr 1e-4: 0.444), as did more prompts at the
    # same steps (3,000: 0.507).
    onpolicy_prompts: int = Field(1500, description="Prompts answered by the SFT model and annotated.")
    onpolicy_samples: int = Field(
        4, ge=2, description="Responses of the SFT model per prompt; the best- and worst-scored make the pair.")
    sampling: SamplingConfig = Field(
        SamplingConfig(top_p=0.95, batch_size=64), description="Decoding of the on-policy responses.")
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig, description="Strength levels and edits.")
    runs: list[DPORunConfig] = Field(
        [DPORunConfig(seed=0, beta=0.1), DPORunConfig(seed=1, beta=0.2)], min_length=1,
        description="DPO runs (seeds/betas) to train and average.")
    nll_coef: float = Field(0.2, description="Weight of the NLL of the chosen response (recipe: 0.2).")
    train: TrainConfig = Field(
        TrainConfig(steps=200, batch_size=16, lr=2.0e-5, log_every=20, schedule={"warmup_steps": 10}),
        description="Optimization of each DPO run (its seed is the run's).")
    eval_prompts: int = Field(
        1000, description="Dev-split prompts for the task accuracy of each run (picks the best run; the round gate's).")
    eval_seed: int = Field(0, description="Seed of the held-out prompts (same for every stage to compare).")
    seed: int = Field(0, description="Seed of prompts, sampling and annotation; the round number is added to it.")


def _mean(xs: list[float]) -> float:
    # (The stage functions take a ``round`` argument, which shadows the builtin there.)
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def rejection_report(candidates: list[Candidate]) -> dict[str, dict[str, Any]]:
    """Per task family (and ``all``): how good the RM's pick is by the checker. ``pick_correct``: the
    pick is fully correct; ``rm_checker_agreement``: the pick has the best checker score of its K
    samples; ``any_correct``: some sample is fully correct (what a perfect RM could reach)."""
    families: dict[str, list[Candidate]] = {"all": candidates}
    for c in candidates:
        families.setdefault(c.prompt.task, []).append(c)
    return {
        task: {
            "prompts": len(cs),
            "pick_correct": _mean([float(c.task_scores[c.best] == 1.0) for c in cs]),
            "rm_checker_agreement": _mean([float(c.task_scores[c.best] == max(c.task_scores)) for c in cs]),
            "any_correct": _mean([float(max(c.task_scores) == 1.0) for c in cs]),
            "mean_reward_chosen": _mean([c.rewards[c.best] for c in cs]),
            "mean_reward_all": _mean([x for c in cs for x in c.rewards]),
            "mean_task_score_chosen": _mean([c.task_scores[c.best] for c in cs]),
            "mean_task_score_all": _mean([x for c in cs for x in c.task_scores]),
        }
        for task, cs in sorted(families.items())
    }


def run_sft_round(cfg: SFTConfig, inputs: dict[str, Path], out: Path, ctx: StageContext, round: int) -> dict[str, Any]:
    from factory.model.checkpoint_io import build_model, load_args, load_model, load_state, save_model
    from factory.train.losses import LanguageModeling

    fmt = load_chat_format(inputs["tokenizer"])
    seed = cfg.seed + round
    rs_prompts = sample_prompts(cfg.rs_prompts, seed, "train", cfg.task_weights)
    ctx.log(f"rejection sampling: {len(rs_prompts)} prompts x {cfg.rs_samples} from {policy_key(round)}")
    policy, rm = load_policy(inputs[policy_key(round)]), load_model(inputs[reward_key(round)])
    candidates = rejection_sample(policy, rm, fmt, rs_prompts, cfg.rs_samples, cfg.sampling, seed,
                                  steer=cfg.steer_rejection_sampling)
    rs = rejection_records(candidates)
    synthetic = synthetic_records(sample_prompts(cfg.synthetic_examples, seed + 10_000, "train", cfg.task_weights),
                                  cfg.system_prompt_share, seed)
    records, qc_counts = clean(rs + synthetic, cfg.qc)

    base = inputs["annealed_checkpoint"]
    args = load_args(base)
    dialogs = [e for r in records
               if (e := sft_example(fmt, r["opening"], r["response"], args.max_seq_len))]
    # The share is of loss tokens, not examples: a window has a loss on every token, a dialog only on
    # its answer (~5-10 tokens), so a share of examples would let the text outweigh the answers ~4:1.
    window = min(cfg.pretrain_seq_len, args.max_seq_len)
    answer_tokens = sum(label != IGNORE for e in dialogs for label in e["labels"])
    n_text = int(answer_tokens * cfg.pretrain_fraction / (1.0 - cfg.pretrain_fraction) / window)
    # The run makes several passes over the dialogs; the text must not repeat with them (a window seen
    # a dozen times is memorized, not a reminder of language modelling: the demo's chat perplexity rose
    # 20x with repeated windows), so the data holds the dialogs once per pass and a fresh text share each.
    passes = max(1, math.ceil(cfg.train.steps * cfg.train.batch_size / max(1, len(dialogs) + n_text)))
    text = pretraining_examples(inputs["data_mix"], n_text * passes, window, fmt.eos_id, seed)
    eval_set = heldout_prompts(cfg.eval_prompts, cfg.eval_seed, "dev")
    runs, states = [], []
    for i, run_seed in enumerate(cfg.seeds):
        train_cfg = cfg.train.model_copy(update={"seed": run_seed})
        result = train_stage("sft" if len(cfg.seeds) == 1 else f"sft_run_{i}", train_cfg, lambda: build_model(args),
                             LanguageModeling(), Examples(dialogs * passes + text, fmt.pad_id, seed=run_seed), ctx,
                             init_state=load_state(base))
        states.append(result.model.state_dict())
        runs.append({"seed": run_seed, "train": describe(result)})
        if len(cfg.seeds) > 1:
            runs[-1]["dev"] = evaluate(result.model, fmt, eval_set)
    model = result.model
    if len(states) > 1:
        model.load_state_dict(average_states(states))
    save_model(model, out, extra={"stage": f"sft_round_{round}", "policy_sampled": policy_key(round),
                                  "averaged_seeds": list(cfg.seeds)})
    _write_jsonl(out / SFT_DATA_FILE, records)

    sources = source_counts(records)
    by_source = {s: sources[s] for s in SOURCES}
    return {
        "rejection_sampling": {
            "policy": policy_key(round),
            "reward_model": reward_key(round),
            "samples_per_prompt": cfg.rs_samples,
            "steered_by_system_prompts": cfg.steer_rejection_sampling,
            "dropped_unverified_traces": len(candidates) - len(rs),
            "kept_after_qc": by_source["rejection_sampling"],
            "per_family": rejection_report(candidates),
        },
        "synthetic_examples": len(synthetic),
        "synthetic_with_system_prompt": sum(r["steered"] for r in synthetic),
        "qc": qc_counts,
        "sft_examples": len(dialogs) * passes + len(text),
        "dialog_passes": passes,
        "loss_tokens": {"answers": answer_tokens * passes, "pretraining_text": len(text) * window},
        "skipped_too_long": len(records) - len(dialogs),
        "examples_by_source": {**by_source, "pretraining_text": len(text)},
        "sampled_share_of_dialogs": sources["sampled_share"],
        "dialogs_per_family": sources["per_family"],
        "runs": runs,
        "dev": evaluate(model, fmt, eval_set),
    }


def run_dpo_round(cfg: DPOConfig, inputs: dict[str, Path], out: Path, ctx: StageContext, round: int) -> dict[str, Any]:
    from factory.model.checkpoint_io import META, WEIGHTS, build_model, load_args, load_state, save_model
    from factory.train.losses import DirectPreference

    fmt = load_chat_format(inputs["tokenizer"])
    sft = inputs[f"sft_round_{round}"]
    args = load_args(sft)
    seed = cfg.seed + round
    prompts = sample_prompts(cfg.onpolicy_prompts, seed, "train", cfg.task_weights)
    ctx.log(f"on-policy pairs: {len(prompts)} prompts x {cfg.onpolicy_samples} from sft_round_{round}")
    responses = sample_responses(load_policy(sft), fmt, prompts, cfg.onpolicy_samples, cfg.sampling, seed)
    rng = random.Random(seed)
    source = f"sft_round_{round}"
    onpolicy = [r for p, texts in zip(prompts, responses, strict=True)
                if (r := annotate_extremes(p, [(t, source) for t in texts], cfg.annotator, rng))]
    offline = read_rankings(inputs[preference_key(round)])
    pairs = [(r.prompt.opening(), good.text, bad.text) for r in onpolicy + offline for good, bad in r.pairs()]
    examples = [e for p, c, r in pairs if (e := preference_example(fmt, p, c, r, args.max_seq_len))]
    if not examples:
        raise ValueError("no preference pairs fit the context: nothing to train DPO on")

    eval_set = heldout_prompts(cfg.eval_prompts, cfg.eval_seed, "dev")
    runs: list[dict[str, Any]] = []
    for i, run in enumerate(cfg.runs):
        train_cfg = cfg.train.model_copy(update={"seed": run.seed})
        objective = DirectPreference(load_policy(sft), run.beta, cfg.nll_coef)
        result = train_stage(f"run_{i}", train_cfg, lambda: build_model(args), objective,
                             Examples(examples, fmt.pad_id, seed=train_cfg.seed), ctx, init_state=load_state(sft))
        save_model(result.model, out / RUNS_DIR / f"run_{i}",
                   extra={"stage": f"dpo_round_{round}", "run": i, "seed": run.seed, "beta": run.beta})
        hist = result.history
        runs.append({
            "seed": run.seed, "beta": run.beta,
            "loss_start": hist[0]["loss"] if hist else None, "loss_end": hist[-1]["loss"] if hist else None,
            "dpo_loss_start": hist[0]["dpo_loss"] if hist else None,
            "dpo_loss_end": hist[-1]["dpo_loss"] if hist else None,
            "reward_accuracy_end": hist[-1]["reward_accuracy"] if hist else None,
            "train": describe(result),
            "dev": evaluate(result.model, fmt, eval_set),
        })
    best = max(range(len(runs)), key=lambda i: (runs[i]["dev"]["accuracy"], runs[i]["dev"]["mean_score"]))
    for name in (WEIGHTS, META):
        shutil.copyfile(out / RUNS_DIR / f"run_{best}" / name, out / name)
    _write_jsonl(out / ONPOLICY_FILE, [r.to_dict() for r in onpolicy])
    return {
        "onpolicy": {"prompts": len(prompts), "dropped_ties": len(prompts) - len(onpolicy), **ranking_counts(onpolicy)},
        "round_preferences": {"asset": preference_key(round), "rankings": len(offline)},
        "pairs": len(examples),
        "skipped_too_long": len(pairs) - len(examples),
        "runs": runs,
        "best_run": best,
        "dev": runs[best]["dev"],
    }
