"""Held-out task accuracy: prompts split evenly over tasks, scored by the checkers."""

import re
from pathlib import Path

import pytest
import torch

from factory.post.prompts import split_of
from factory.post.task_accuracy import _summary, heldout_prompts, task_accuracy
from factory.post.tasks import TASKS


def test_heldout_prompts_are_of_their_split_and_balanced():
    n = 3 * len(TASKS)
    prompts = heldout_prompts(n, 0, "dev")
    assert len(prompts) == n and all(split_of(p.key) == "dev" for p in prompts)
    assert all(split_of(p.key) == "test" for p in heldout_prompts(12, 0, "test"))
    with pytest.raises(ValueError, match="not train"):
        heldout_prompts(12, 0, "train")
    assert {t: sum(p.task == t for p in prompts) for t in TASKS} == dict.fromkeys(TASKS, 3)
    assert heldout_prompts(n, 0, "dev") == prompts


def test_task_accuracy_of_a_saved_model(tmp_path):
    from factory.data import tokenizer as T
    from factory.model.checkpoint_io import save_model
    from factory.model.flavors import model_args
    from factory.model.llama import Transformer

    texts = [p.prompt + " " + p.reference for p in heldout_prompts(40, 1, "test")]
    tok = T.train_bpe(texts, 350, num_special_tokens=16)
    T.save_tokenizer(tok, tmp_path / "tok")
    torch.manual_seed(0)
    save_model(Transformer(model_args("debug", tok.get_vocab_size(), max_seq_len=256)), tmp_path / "lm")
    result = task_accuracy(tmp_path / "lm", tmp_path / "tok", n=2 * len(TASKS), seed=0, split="test")
    assert result["n"] == 2 * len(TASKS) and set(TASKS) <= set(result)
    assert result["accuracy"] == 0.0  # a random model answers nothing exactly
    assert all(result[t]["n"] == 2 for t in TASKS)


def test_accuracy_carries_its_95_percent_interval():
    half = _summary([1.0] * 50 + [0.5] * 50)  # partial credit is not correct
    assert (half["accuracy"], half["ci95"], half["mean_score"]) == (0.5, 0.098, 0.75)
    assert _summary([1.0] * 10)["ci95"] == 0.0 and _summary([])["n"] == 0


def test_only_the_eval_report_reads_the_test_split():
    """Choices (the best DPO run, gates, FP8) read dev: a call that asks for the test split's prompts
    anywhere but the report is a decision taken on test."""
    root = Path(__file__).resolve().parents[2] / "factory"
    asks = re.compile(r"\b(heldout_prompts|sample_prompts|task_accuracy)\((?:[^()]|\([^()]*\))*\"test\"")
    readers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if asks.search(p.read_text()))
    assert readers == ["release/report.py"]
