"""The Llama 3 dialog format as token ids (recipe: "Post-training Data", chat dialog format).

A dialog is ``<|begin_of_text|>`` followed by messages, each
``<|start_header_id|>{role}<|end_header_id|>\\n\\n{content}<|eot_id|>``; a generation prompt ends
with an open assistant header. This is the format of ``chat_template.jinja`` in the tokenizer
artifact, encoded here directly so training and generation never go through string templating.

``encode_dialog`` also returns which tokens are the assistant's targets: SFT trains on assistant
content and its ``<|eot_id|>`` (loss on target tokens only), while DPO additionally masks the
special formatting tokens (recipe: "mask out special formatting tokens ... from both chosen and
rejected responses").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from factory.model import tokenizer_files as T


class Message(TypedDict):
    role: str  # system | user | assistant | ipython
    content: str


@dataclass
class ChatFormat:
    """Encodes headers, messages and dialogs with a trained tokenizer and its special-token ids."""

    tokenizer: object  # tokenizers.Tokenizer
    special: dict[str, int]

    @property
    def bos_id(self) -> int:
        return self.special[T.BEGIN_OF_TEXT]

    @property
    def eos_id(self) -> int:
        return self.special[T.END_OF_TEXT]

    @property
    def eot_id(self) -> int:
        return self.special[T.EOT]

    @property
    def pad_id(self) -> int:
        return self.special[T.FINETUNE_RIGHT_PAD]

    @property
    def stop_tokens(self) -> frozenset[int]:
        """Tokens that end an assistant turn during generation."""
        return frozenset({self.special[T.EOT], self.special[T.EOM], self.special[T.END_OF_TEXT]})

    def encode(self, text: str) -> list[int]:
        """Plain text -> ids, no BOS. A special token's string inside text still maps to its id, so
        generated responses are decoded without special tokens before they are stored."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids if text else []

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode_header(self, role: str) -> list[int]:
        return [self.special[T.START_HEADER], *self.encode(role), self.special[T.END_HEADER], *self.encode("\n\n")]

    def encode_message(self, message: Message) -> list[int]:
        return [*self.encode_header(message["role"]), *self.encode(message["content"].strip()), self.eot_id]

    def encode_dialog_prompt(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[int]:
        ids = [self.bos_id]
        for m in messages:
            ids += self.encode_message(m)
        if add_generation_prompt:
            ids += self.encode_header("assistant")
        return ids

    def encode_dialog(self, messages: Sequence[Message]) -> tuple[list[int], list[bool]]:
        """A complete dialog -> (ids, is_target): targets are assistant content tokens and their eot."""
        ids, target = [self.bos_id], [False]
        for m in messages:
            header = self.encode_header(m["role"])
            body = [*self.encode(m["content"].strip()), self.eot_id]
            ids += header + body
            target += [False] * len(header) + [m["role"] == "assistant"] * len(body)
        return ids, target

    def is_special(self, token: int) -> bool:
        return token >= min(self.special.values())


def load_chat_format(folder: Path) -> ChatFormat:
    """The ``ChatFormat`` of a tokenizer artifact folder."""
    return ChatFormat(T.load_tokenizer(folder), T.load_special_tokens(folder))
