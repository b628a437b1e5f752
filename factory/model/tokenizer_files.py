"""The tokenizer artifact's format, readable by every layer from the model up (recipe: "Model
Architecture", vocabulary; "Post-training Data", chat dialog format).

A ``tokenizer`` artifact holds ``tokenizer.json`` (HF tokenizers format), ``special_tokens.json``
(name -> id) and ``chat_template.jinja``. The Llama 3 special-token names and the chat template
live here, beside the loaders, so the chat format, the Hugging Face export and the guards read a
tokenizer without importing the stage that trains one (``factory.data.tokenizer``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

TOKENIZER_FILE = "tokenizer.json"
SPECIAL_TOKENS_FILE = "special_tokens.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"

BEGIN_OF_TEXT = "<|begin_of_text|>"
END_OF_TEXT = "<|end_of_text|>"
FINETUNE_RIGHT_PAD = "<|finetune_right_pad_id|>"
STEP_ID = "<|step_id|>"
START_HEADER = "<|start_header_id|>"
END_HEADER = "<|end_header_id|>"
EOM = "<|eom_id|>"  # end of message: the model waits for a tool result
EOT = "<|eot_id|>"  # end of turn
PYTHON_TAG = "<|python_tag|>"


def reserved_token(i: int) -> str:
    return f"<|reserved_special_token_{i}|>"


# Llama 3.1's order of the named special tokens (llama-models tokenizer.py); the remaining
# reserved tokens follow them. Special tokens take the ids after the BPE vocabulary.
NAMED_SPECIAL_TOKENS = [
    BEGIN_OF_TEXT, END_OF_TEXT, reserved_token(0), reserved_token(1), FINETUNE_RIGHT_PAD, STEP_ID,
    START_HEADER, END_HEADER, EOM, EOT, PYTHON_TAG,
]

# The Llama 3 chat template (as shipped with the HF Llama 3 models, without the tool-calling
# branches): each message is a header, "\n\n", the stripped content and <|eot_id|>.
CHAT_TEMPLATE = (
    "{{- '" + BEGIN_OF_TEXT + "' -}}\n"
    "{%- for message in messages -%}\n"
    "{{- '" + START_HEADER + "' + message['role'] + '" + END_HEADER + "\\n\\n' + message['content'] | trim + '"
    + EOT + "' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "{{- '" + START_HEADER + "assistant" + END_HEADER + "\\n\\n' -}}\n"
    "{%- endif -%}\n"
)


def load_tokenizer(folder: Path):
    """The ``tokenizers.Tokenizer`` of a tokenizer artifact."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(Path(folder) / TOKENIZER_FILE))


def load_special_tokens(folder: Path) -> dict[str, int]:
    return json.loads((Path(folder) / SPECIAL_TOKENS_FILE).read_text())


@dataclass(frozen=True)
class TokenizerInfo:
    """What training stages need of a tokenizer artifact: the tokenizer, its size and the separator."""

    tokenizer: object  # tokenizers.Tokenizer
    vocab_size: int
    eot_id: int
    special: dict[str, int]

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids


def tokenizer_info(folder: Path) -> TokenizerInfo:
    """Load a ``tokenizer`` artifact; the model vocabulary covers every id, special ones included."""
    tok = load_tokenizer(folder)
    special = load_special_tokens(folder)
    if END_OF_TEXT not in special:
        raise ValueError(f"tokenizer at {folder} has no {END_OF_TEXT} special token")
    vocab = max(tok.get_vocab_size(with_added_tokens=True), max(special.values()) + 1)
    return TokenizerInfo(tok, vocab, special[END_OF_TEXT], special)
