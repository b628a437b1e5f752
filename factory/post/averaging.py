"""The chat_model stage: model averaging (recipe: "Post-training Data": "We average models obtained
from experiments using various versions of data or hyperparameters at each RM, SFT, or DPO stage").

The last round's DPO runs (``dpo_round_N/runs/run_i``, same architecture, same SFT starting
point) are averaged weight by weight; the dev-split task accuracy of the average is reported beside
each run's, so the metadata shows whether averaging helped (and the chat model's release gate reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from factory.core.stage import StageConfig, StageContext

RUNS_DIR = "runs"  # the layout dpo_round_k writes (factory.post.rounds)


class AverageConfig(StageConfig):
    """Evaluation of the averaged chat model."""

    eval_prompts: int = Field(
        1000, description="Dev-split prompts for the task accuracy of the average and of each run.")
    eval_seed: int = Field(0, description="Seed of the dev prompts (same for every stage to compare).")


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of state dicts with identical keys and shapes (computed in fp32)."""
    if not states:
        raise ValueError("nothing to average")
    keys = set(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != keys:
            raise ValueError(f"state {i} has different parameters: {sorted(keys ^ set(s))[:5]}")
        for k in keys:
            if s[k].shape != states[0][k].shape:
                raise ValueError(f"state {i}: {k} has shape {tuple(s[k].shape)}, expected {tuple(states[0][k].shape)}")
    return {k: torch.stack([s[k].float() for s in states]).mean(0) for k in states[0]}


def last_round_key(inputs: dict[str, Path]) -> str:
    keys = [k for k in inputs if k.startswith("dpo_round_")]
    if len(keys) != 1:
        raise ValueError(f"expected exactly one dpo_round_* input, got {keys}")
    return keys[0]


def run_chat_model(cfg: AverageConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    from factory.model.chat_format import load_chat_format
    from factory.model.checkpoint_io import load_args, load_state, save_model
    from factory.model.llama import Transformer
    from factory.post.task_accuracy import evaluate, heldout_prompts

    key = last_round_key(inputs)
    run_dirs = sorted((inputs[key] / RUNS_DIR).iterdir(), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not run_dirs:
        raise ValueError(f"{key} has no runs under {RUNS_DIR}/")
    args = load_args(run_dirs[0])
    for d in run_dirs[1:]:
        if load_args(d) != args:
            raise ValueError(f"{d.name} has a different architecture than {run_dirs[0].name}")
    ctx.log(f"averaging {len(run_dirs)} runs of {key}")
    model = Transformer(args)
    model.load_state_dict(average_states([load_state(d) for d in run_dirs]))
    model.eval()
    save_model(model, out, extra={"stage": "chat_model", "averaged": [f"{key}/{RUNS_DIR}/{d.name}" for d in run_dirs]})

    fmt = load_chat_format(inputs["tokenizer"])
    prompts = heldout_prompts(cfg.eval_prompts, cfg.eval_seed, "dev")
    runs = {}
    for d in run_dirs:
        run = Transformer(args)
        run.load_state_dict(load_state(d))
        runs[d.name] = evaluate(run.eval(), fmt, prompts)
    return {"source": key, "runs_averaged": len(run_dirs), "dev": evaluate(model, fmt, prompts), "dev_runs": runs}
