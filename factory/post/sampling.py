"""Sampling responses to verifiable prompts from a policy (recipe: "Post-training Data": responses
for preference annotation, rejection sampling's K outputs per prompt, on-policy DPO pairs).

Thin glue over ``factory.model.generate.generate``: chat-format the prompts, decode the new tokens
without special tokens, and return K texts per prompt. Also the settings every sampling stage shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import Field

from factory.core.stage import StageConfig
from factory.model.chat_format import ChatFormat
from factory.post.encode import prompt_ids
from factory.post.prompts import TaskPrompt
from factory.post.tasks import FAMILIES


class SamplingConfig(StageConfig):
    """Decoding settings for sampled responses."""

    max_new_tokens: int = Field(48, description="Most tokens of one response (a two-step math trace is ~40).")
    temperature: float = Field(1.0, description="Softmax temperature; 0 is greedy.")
    top_p: float = Field(1.0, description="Nucleus mass kept when sampling.")
    batch_size: int = Field(32, description="Sequences decoded together.")


def sample_responses(model, fmt: ChatFormat, prompts: Sequence[TaskPrompt], samples: int, cfg: SamplingConfig,
                     seed: int, steer: bool = False) -> list[list[str]]:
    """``samples`` response texts for each prompt, in prompt order; ``steer`` opens each dialog with
    its family's system prompt. A dialog that leaves fewer than ``max_new_tokens`` of the model's
    context keeps BOS and its tail (as the reward model reads one): a short-context model answers
    the end of a long opening rather than failing the stage."""
    from factory.model.generate import generate

    room = model.args.max_seq_len - cfg.max_new_tokens - 1  # BOS + the tail must leave the answer its tokens
    if room < 1:
        raise ValueError(f"max_new_tokens {cfg.max_new_tokens} leaves no room for a prompt in the model's "
                         f"context of {model.args.max_seq_len}")
    ids = [prompt_ids(fmt, p.opening(FAMILIES[p.task].system_prompt if steer else None)) for p in prompts]
    ids = [i if len(i) <= room + 1 else [i[0], *i[-room:]] for i in ids]
    flat = [i for i in ids for _ in range(samples)]
    out = generate(model, flat, cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
                   stop_tokens=fmt.stop_tokens, seed=seed, batch_size=cfg.batch_size)
    texts = [fmt.decode(o, skip_special_tokens=True).strip() for o in out]
    return [texts[i * samples : (i + 1) * samples] for i in range(len(prompts))]


def load_policy(folder: Path):
    """A saved LM (checkpoint_io layout) in eval mode; raises if the folder holds a scorer."""
    from factory.model.checkpoint_io import load_model, read_meta

    if read_meta(folder)["kind"] != "lm":
        raise ValueError(f"{folder} holds a {read_meta(folder)['kind']}, not a language model")
    return load_model(folder)
