"""The reward_model stage (recipe: "Post-training Data": "We train a RM ... on top of the pre-trained
checkpoint"; a ranking loss without Llama 2's margin term).

A ``SequenceScorer`` with one output starts from the annealed pre-trained checkpoint (the backbone's
weights; the score head is fresh) and is trained with ``PairwiseRanking`` on every ordered pair of
each ranking: edited > chosen, edited > rejected and chosen > rejected. A seeded share of the
rankings is held out and the pairwise accuracy on it is reported. One run is trained per data-order
seed (``seeds``) and the runs are averaged weight by weight (recipe: "We average models obtained
from experiments using various versions of data or hyperparameters at each RM, SFT, or DPO
stage"); each run's held-out accuracy is reported beside the average's.

Round k's reward model (``reward_round_k``) is the same stage trained on every preference asset up
to that round (``preference_data``, ``preference_round_2..k``), so it also judges the answers of the
models it now selects among (recipe: new annotations "after each round"); round 1's is ``reward_model``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.model.chat_format import ChatFormat, Message, load_chat_format
from factory.post.annotator import Ranking
from factory.post.averaging import average_states
from factory.post.encode import ranking_example, scored_ids
from factory.post.preference import read_rankings
from factory.post.round_assets import preference_keys
from factory.train.config import TrainConfig
from factory.train.data import Examples, score_sequences
from factory.train.stage_training import train_stage
from factory.train.trainer import describe


class RewardConfig(StageConfig):
    """Reward-model training on the preference rankings."""

    train: TrainConfig = Field(
        TrainConfig(steps=60, batch_size=32, lr=5.0e-4, log_every=10, schedule={"warmup_steps": 6}),
        description="Optimization of the reward model.")
    seeds: list[int] = Field([0, 1], min_length=1, description="Data-order seed of each run; the runs are averaged.")
    val_fraction: float = Field(0.2, description="Share of rankings held out for pairwise accuracy.")
    seed: int = Field(0, description="Seed of the held-out split.")
    score_batch_size: int = Field(32, description="Sequences scored together at evaluation.")


def split_rankings(rankings: Sequence[Ranking], val_fraction: float, seed: int) -> tuple[list[Ranking], list[Ranking]]:
    order = list(range(len(rankings)))
    random.Random(seed).shuffle(order)
    n_val = min(len(order) - 1, round(val_fraction * len(order))) if val_fraction > 0 else 0
    return [rankings[i] for i in order[n_val:]], [rankings[i] for i in order[:n_val]]


def ranking_pairs(fmt: ChatFormat, rankings: Sequence[Ranking], max_len: int) -> tuple[list[dict[str, Any]], int]:
    """(examples over all ordered pairs, pairs skipped for length)."""
    examples, skipped = [], 0
    for r in rankings:
        for better, worse in r.pairs():
            ex = ranking_example(fmt, r.prompt.opening(), better.text, worse.text, max_len)
            if ex is None:
                skipped += 1
            else:
                examples.append(ex)
    return examples, skipped


@torch.no_grad()
def reward_scores(rm, fmt: ChatFormat, items: Sequence[tuple[Sequence[Message], str]],
                  batch_size: int = 32) -> list[float]:
    """Scalar reward of each (opening, response); dialogs longer than the context keep their tail."""
    max_len = rm.backbone.args.max_seq_len
    seqs = [scored_ids(fmt, p, r)[-max_len:] for p, r in items]
    return score_sequences(rm, seqs, fmt.pad_id, batch_size).squeeze(-1).tolist()


def pairwise_accuracy(rm, fmt: ChatFormat, rankings: Sequence[Ranking], batch_size: int = 32) -> float:
    pairs = [(r.prompt.opening(), better.text, worse.text) for r in rankings for better, worse in r.pairs()]
    if not pairs:
        return 0.0
    better = reward_scores(rm, fmt, [(p, b) for p, b, _ in pairs], batch_size)
    worse = reward_scores(rm, fmt, [(p, w) for p, _, w in pairs], batch_size)
    return round(sum(b > w for b, w in zip(better, worse, strict=False)) / len(pairs), 4)


def run_reward_model(cfg: RewardConfig, inputs: dict[str, Path], out: Path, ctx: StageContext,
                     round: int = 1) -> dict[str, Any]:
    from factory.model.checkpoint_io import backbone_state, build_model, load_args, save_model
    from factory.train.losses import PairwiseRanking

    fmt = load_chat_format(inputs["tokenizer"])
    base = inputs["annealed_checkpoint"]
    args = load_args(base)
    by_asset = {key: read_rankings(inputs[key]) for key in preference_keys(round)}
    rankings = [r for asset_rankings in by_asset.values() for r in asset_rankings]
    train_set, val_set = split_rankings(rankings, cfg.val_fraction, cfg.seed)
    examples, skipped = ranking_pairs(fmt, train_set, args.max_seq_len)
    runs, states = [], []
    for i, seed in enumerate(cfg.seeds):
        train_cfg = cfg.train.model_copy(update={"seed": seed})
        result = train_stage(f"run_{i}", train_cfg, lambda: build_model(args, "scorer", 1), PairwiseRanking(),
                             Examples(examples, fmt.pad_id, seed=seed), ctx, init_state=backbone_state(base),
                             strict_init=False)
        states.append(result.model.state_dict())
        runs.append({"seed": seed, "val_pairwise_accuracy": pairwise_accuracy(result.model.eval(), fmt, val_set,
                                                                               cfg.score_batch_size),
                     **describe(result)})
    rm = build_model(args, "scorer", 1)
    rm.load_state_dict(average_states(states))
    rm.eval()
    save_model(rm, out, extra={"stage": "reward_model", "round": round, "averaged_seeds": list(cfg.seeds)})
    return {
        "rankings_by_asset": {key: len(rs) for key, rs in by_asset.items()},
        "train_rankings": len(train_set),
        "val_rankings": len(val_set),
        "train_pairs": len(examples),
        "skipped_too_long": skipped,
        "train_pairwise_accuracy": pairwise_accuracy(rm, fmt, train_set, cfg.score_batch_size),
        "val_pairwise_accuracy": pairwise_accuracy(rm, fmt, val_set, cfg.score_batch_size),
        "runs": runs,
    }
