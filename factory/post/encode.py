"""Post-training examples as token ids in the trainer's batch layouts (``factory.train.losses``).

- SFT (``LanguageModeling``): the dialog's ids with labels only on the assistant's tokens and its
  ``<|eot_id|>`` (recipe: "loss on the target tokens"); everything else is -100.
- DPO (``DirectPreference``): chosen and rejected dialogs with labels on the response content only;
  the header and termination tokens are masked in both (recipe: "mask out special formatting tokens").
- Reward model (``PairwiseRanking``): better/worse dialogs and their lengths; the scorer reads the
  hidden state of the last real token (the response's ``<|eot_id|>``).

Every encoder returns None for a dialog longer than the model's context; callers count the skips.
"""

from __future__ import annotations

from typing import Any

from factory.model.chat_format import ChatFormat, Message
from factory.train.losses import IGNORE


def _opening(prompt: str, system: str | None) -> list[Message]:
    head: list[Message] = [{"role": "system", "content": system}] if system else []
    return [*head, {"role": "user", "content": prompt}]


def dialog(prompt: str, response: str, system: str | None = None) -> list[Message]:
    return [*_opening(prompt, system), {"role": "assistant", "content": response}]


def prompt_ids(fmt: ChatFormat, prompt: str, system: str | None = None) -> list[int]:
    """The generation prompt of a single-turn dialog (ends with the open assistant header)."""
    return fmt.encode_dialog_prompt(_opening(prompt, system))


def sft_example(fmt: ChatFormat, prompt: str, response: str, max_len: int,
                system: str | None = None) -> dict[str, Any] | None:
    ids, target = fmt.encode_dialog(dialog(prompt, response, system))
    if len(ids) > max_len:
        return None
    return {"input_ids": ids, "labels": [i if t else IGNORE for i, t in zip(ids, target, strict=True)]}


def _response_without_formatting(fmt: ChatFormat, prompt: str, response: str) -> tuple[list[int], list[int]]:
    ids, target = fmt.encode_dialog(dialog(prompt, response))
    return ids, [i if t and not fmt.is_special(i) else IGNORE for i, t in zip(ids, target, strict=True)]


def preference_example(fmt: ChatFormat, prompt: str, chosen: str, rejected: str, max_len: int) -> dict[str, Any] | None:
    c_ids, c_labels = _response_without_formatting(fmt, prompt, chosen)
    r_ids, r_labels = _response_without_formatting(fmt, prompt, rejected)
    if max(len(c_ids), len(r_ids)) > max_len:
        return None
    return {"chosen_ids": c_ids, "chosen_labels": c_labels, "rejected_ids": r_ids, "rejected_labels": r_labels}


def scored_ids(fmt: ChatFormat, prompt: str, response: str) -> list[int]:
    """What the reward model reads: the whole dialog, ending with the response's eot."""
    return fmt.encode_dialog(dialog(prompt, response))[0]


def ranking_example(fmt: ChatFormat, prompt: str, better: str, worse: str, max_len: int) -> dict[str, Any] | None:
    c_ids, r_ids = scored_ids(fmt, prompt, better), scored_ids(fmt, prompt, worse)
    if max(len(c_ids), len(r_ids)) > max_len:
        return None
    return {"chosen_ids": c_ids, "chosen_len": len(c_ids), "rejected_ids": r_ids, "rejected_len": len(r_ids)}
