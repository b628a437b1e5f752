"""What a verifiable prompt is and which split it belongs to (recipe: "Post-training Data"; the
project's honest-evaluation rule: held-out prompts never reach training data).

A ``TaskPrompt`` is the dialog before the answer (``context``: a system prompt and earlier turns,
often empty, then the user's ``prompt``), a correct ``reference`` answer and the checker's
parameters. A ``TaskFamily`` generates prompts and checks answers (``factory.post.tasks`` holds the
registry). Every prompt's ``key`` names its content; a stable hash of that content puts it in
``train``, ``dev`` or ``test``, so held-out prompts stay held out whatever seed draws them.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from factory.model.chat_format import Message

Split = Literal["train", "dev", "test"]
TEST_FRACTION = 0.2  # share of each task's key space reserved for the report
DEV_FRACTION = 0.1  # share reserved for choices and gates (taken from what was train, so test stays put)


@dataclass(frozen=True)
class TaskPrompt:
    """One verifiable prompt: the dialog up to the user's last message, a correct reference answer
    and checker params. ``context`` holds the messages before ``prompt`` (system, earlier turns)."""

    task: str
    key: str
    prompt: str
    reference: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    context: tuple[Message, ...] = field(default=(), hash=False, compare=False)

    def opening(self, system: str | None = None) -> list[Message]:
        """The messages a response answers. ``system`` (a steer) opens the dialog unless its own
        context already starts with a system prompt, which wins (it is what the task checks)."""
        own_system = bool(self.context) and self.context[0]["role"] == "system"
        head: list[Message] = [{"role": "system", "content": system}] if system and not own_system else []
        return [*head, *self.context, {"role": "user", "content": self.prompt}]

    def to_dict(self) -> dict[str, Any]:
        d = {"task": self.task, "key": self.key, "prompt": self.prompt, "reference": self.reference,
             "params": self.params}
        return {**d, "context": list(self.context)} if self.context else d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskPrompt:
        return cls(d["task"], d["key"], d["prompt"], d["reference"], dict(d["params"]),
                   tuple(d.get("context", ())))


def split_of(key: str) -> Split:
    """The split of a key's content: the part before an ``@`` (what follows names a surface form, e.g.
    a language, so every rendering of one content lands in the same split)."""
    content = key.partition("@")[0]
    h = int.from_bytes(hashlib.sha1(content.encode()).digest()[:8], "big") / 2**64
    if h < TEST_FRACTION:
        return "test"
    return "dev" if h < TEST_FRACTION + DEV_FRACTION else "train"


@dataclass(frozen=True)
class TaskFamily:
    """What a verifiable task family provides: a generator of prompts with their content key and
    reference (the key's hash sets the split), and a checker scoring a response in [0, 1] (1 only
    for a fully correct answer). The annotator, rejection sampling and the evaluations need nothing
    else from a family."""

    name: str
    generate: Callable[[random.Random], TaskPrompt]
    check: Callable[[TaskPrompt, str], float]
    # The capability's system prompt: steers rejection sampling toward the family's preferred form
    # (recipe, "SFT Data": "we use system prompts to steer RS responses to conform with desirable
    # tone, style, or formatting, which might be different for different capabilities").
    system_prompt: str
    # Reasoning traces are kept only when their final answer verifies (recipe, "Math Reasoning":
    # "filtering incorrect reasoning traces"): rejection sampling drops an RM pick that fails.
    verified_traces: bool = False
