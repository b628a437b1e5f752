"""Held-out task accuracy: prompts split evenly over tasks, scored by the checkers."""

import torch

from factory.post.task_accuracy import heldout_prompts, task_accuracy
from factory.post.tasks import TASKS, split_of


def test_heldout_prompts_are_eval_split_and_balanced():
    prompts = heldout_prompts(12, 0)
    assert len(prompts) == 12 and all(split_of(p.key) == "eval" for p in prompts)
    assert {t: sum(p.task == t for p in prompts) for t in TASKS} == dict.fromkeys(TASKS, 3)
    assert heldout_prompts(12, 0) == prompts


def test_task_accuracy_of_a_saved_model(tmp_path):
    from factory.data import tokenizer as T
    from factory.model.checkpoint_io import save_model
    from factory.model.flavors import model_args
    from factory.model.llama import Transformer

    tok = T.train_bpe([p.prompt + " " + p.reference for p in heldout_prompts(40, 1)], 350, num_special_tokens=16)
    T.save_tokenizer(tok, tmp_path / "tok")
    torch.manual_seed(0)
    save_model(Transformer(model_args("debug", tok.get_vocab_size(), max_seq_len=64)), tmp_path / "lm")
    result = task_accuracy(tmp_path / "lm", tmp_path / "tok", n=8, seed=0)
    assert result["n"] == 8 and set(TASKS) <= set(result)
    assert result["accuracy"] == 0.0  # a random model answers nothing exactly
    assert all(result[t]["n"] == 2 for t in TASKS)
