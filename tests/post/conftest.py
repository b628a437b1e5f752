"""Tiny post-training inputs: a tokenizer trained on task-like text, random debug-flavor LMs and a
one-stream data mix of that text (the pre-training share of SFT)."""

import json
from pathlib import Path

import pytest
import torch

from factory.data import tokenizer as T
from factory.model.chat_format import load_chat_format
from factory.model.checkpoint_io import save_model
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.post.tasks import TASKS, sample_prompts
from factory.train.token_shards import MIX_FILE, encode_documents, save_stream

MODEL_KEYS = ("annealed_checkpoint", "code_expert", "multilingual_expert")


def _corpus() -> list[str]:
    prompts = sample_prompts(200, 0, "train", dict.fromkeys(TASKS, 1.0))
    return [f"{p.prompt}\n{p.reference}" for p in prompts]


@pytest.fixture(scope="session")
def post_inputs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("post_inputs")
    tok = T.train_bpe(_corpus(), 400, num_special_tokens=16)
    T.save_tokenizer(tok, root / "tokenizer")
    inputs = {"tokenizer": root / "tokenizer"}
    for i, key in enumerate(MODEL_KEYS):
        torch.manual_seed(i)
        save_model(Transformer(model_args("debug", tok.get_vocab_size(), max_seq_len=192)), root / key)
        inputs[key] = root / key
    mix = root / "data_mix"
    ids = encode_documents(tok, _corpus(), load_chat_format(root / "tokenizer").eos_id)
    save_stream(ids, mix, "general", "train", shard_tokens=4096)
    (mix / MIX_FILE).write_text(json.dumps({"weights": {"general": 1.0}}))
    inputs["data_mix"] = mix
    return inputs


