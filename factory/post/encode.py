"""Post-training examples as token ids in the trainer's batch layouts (``factory.train.losses``).

Every example is an *opening* (the messages a response answers: an optional system prompt,
earlier turns, the user's last message; ``TaskPrompt.opening``) and one assistant response.

- SFT (``LanguageModeling``): the dialog's ids with labels only on the response's tokens and its
  ``<|eot_id|>`` (recipe: "loss on the target tokens"); the opening, earlier assistant turns
  included, is -100.
- DPO (``DirectPreference``): chosen and rejected dialogs with labels on the response content only;
  the header and termination tokens are masked in both (recipe: "mask out special formatting tokens").
- Reward model (``PairwiseRanking``): better/worse dialogs and their lengths; the scorer reads the
  hidden state of the last real token (the response's ``<|eot_id|>``).

Every encoder returns None for a dialog longer than the model's context; callers count the skips.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.model.chat_format import ChatFormat, Message
from factory.train.losses import IGNORE


def prompt_ids(fmt: ChatFormat, opening: Sequence[Message]) -> list[int]:
    """The generation prompt: the opening's messages and an open assistant header."""
    return fmt.encode_dialog_prompt(opening)


def _dialog(fmt: ChatFormat, opening: Sequence[Message], response: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids ending with eot): together, the chat format's encoding of the dialog."""
    return prompt_ids(fmt, opening), [*fmt.encode(response.strip()), fmt.eot_id]


def sft_example(fmt: ChatFormat, opening: Sequence[Message], response: str, max_len: int) -> dict[str, Any] | None:
    prompt, answer = _dialog(fmt, opening, response)
    if len(prompt) + len(answer) > max_len:
        return None
    return {"input_ids": prompt + answer, "labels": [IGNORE] * len(prompt) + answer}


def _response_without_formatting(fmt: ChatFormat, opening: Sequence[Message],
                                 response: str) -> tuple[list[int], list[int]]:
    prompt, answer = _dialog(fmt, opening, response)
    return prompt + answer, [IGNORE] * len(prompt) + [IGNORE if fmt.is_special(t) else t for t in answer]


def preference_example(fmt: ChatFormat, opening: Sequence[Message], chosen: str, rejected: str,
                       max_len: int) -> dict[str, Any] | None:
    c_ids, c_labels = _response_without_formatting(fmt, opening, chosen)
    r_ids, r_labels = _response_without_formatting(fmt, opening, rejected)
    if max(len(c_ids), len(r_ids)) > max_len:
        return None
    return {"chosen_ids": c_ids, "chosen_labels": c_labels, "rejected_ids": r_ids, "rejected_labels": r_labels}


def scored_ids(fmt: ChatFormat, opening: Sequence[Message], response: str) -> list[int]:
    """What the reward model reads: the whole dialog, ending with the response's eot."""
    prompt, answer = _dialog(fmt, opening, response)
    return prompt + answer


def ranking_example(fmt: ChatFormat, opening: Sequence[Message], better: str, worse: str,
                    max_len: int) -> dict[str, Any] | None:
    c_ids, r_ids = scored_ids(fmt, opening, better), scored_ids(fmt, opening, worse)
    if max(len(c_ids), len(r_ids)) > max_len:
        return None
    return {"chosen_ids": c_ids, "chosen_len": len(c_ids), "rejected_ids": r_ids, "rejected_len": len(r_ids)}
