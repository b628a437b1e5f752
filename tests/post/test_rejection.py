"""Rejection sampling keeps the reward model's best sample; acceptance can require a checker score."""

from types import SimpleNamespace

import torch
from torch import nn

from factory.model.chat_format import load_chat_format
from factory.post.rejection import pick_best
from factory.post.sft_data import rejection_records
from factory.post.tasks import TaskPrompt


class LengthRM(nn.Module):
    """A stand-in reward model whose reward is the dialog's length: the longest answer wins."""

    backbone = SimpleNamespace(args=SimpleNamespace(max_seq_len=96))

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return lengths.float()[:, None]


def test_rs_picks_the_rm_best_sample(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    p = TaskPrompt("arithmetic", "arith:47+38", "What is 47 + 38?", "85", {"answer": 85})
    q = TaskPrompt("uppercase", "upper:tiger", "Write the word tiger in uppercase.", "TIGER", {"word": "tiger"})
    cands = pick_best([p, q], [["12", "85 is it", "8"], ["TIGER", "tiger"]], LengthRM(), fmt)
    assert cands[0].response == "85 is it" and cands[0].best == 1
    assert cands[0].task_scores == [0.0, 0.5, 0.0]
    assert cands[1].response == "TIGER"  # equal lengths: the first sample
    assert [r["response"] for r in rejection_records(cands, 0.0)] == ["85 is it", "TIGER"]
    assert [r["response"] for r in rejection_records(cands, 1.0)] == ["TIGER"]
