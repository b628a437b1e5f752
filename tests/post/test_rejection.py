"""Rejection sampling keeps the reward model's best sample; the checker's scores are reported beside it."""

from types import SimpleNamespace

import torch
from torch import nn

from factory.model.chat_format import load_chat_format
from factory.post.encode import prompt_ids
from factory.post.prompts import TaskPrompt
from factory.post.rejection import pick_best, rejection_sample
from factory.post.rounds import rejection_report
from factory.post.sampling import SamplingConfig, sample_responses
from factory.post.sft_data import rejection_records
from factory.post.tasks import FAMILIES


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
    # The RM's pick is kept even where the checker disagrees: the checker annotates, it does not override.
    records = rejection_records(cands)
    assert [(r["response"], r["task_score"]) for r in records] == [("85 is it", 0.5), ("TIGER", 1.0)]
    report = rejection_report(cands)
    arithmetic = report["arithmetic"]
    assert (arithmetic["prompts"], arithmetic["pick_correct"], arithmetic["rm_checker_agreement"],
            arithmetic["any_correct"], arithmetic["mean_task_score_chosen"]) == (1, 0.0, 1.0, 0.0, 0.5)
    assert arithmetic["mean_reward_chosen"] > arithmetic["mean_reward_all"]  # the longest of three answers
    assert report["uppercase"]["pick_correct"] == report["uppercase"]["any_correct"] == 1.0
    assert report["all"]["prompts"] == 2 and report["all"]["pick_correct"] == 0.5


CONTEXT_512 = SimpleNamespace(args=SimpleNamespace(max_seq_len=512))  # a policy stand-in: generate is faked


def test_rs_samples_under_the_family_system_prompt_and_keeps_the_dialog_without_it(post_inputs, monkeypatch):
    fmt = load_chat_format(post_inputs["tokenizer"])
    p = TaskPrompt("arithmetic", "arith:47+38", "What is 47 + 38?", "85", {"answer": 85})
    seen: list[list[int]] = []

    def fake_generate(model, prompts, max_new_tokens, **kwargs):
        seen.extend(prompts)
        return [fmt.encode("85")] * len(prompts)

    monkeypatch.setattr("factory.model.generate.generate", fake_generate)
    steered = rejection_sample(CONTEXT_512, LengthRM(), fmt, [p], 2, SamplingConfig(), seed=0, steer=True)
    assert seen == [prompt_ids(fmt, p.opening(FAMILIES["arithmetic"].system_prompt))] * 2
    assert rejection_records(steered)[0]["opening"] == [{"role": "user", "content": p.prompt}]
    seen.clear()
    rejection_sample(CONTEXT_512, LengthRM(), fmt, [p], 2, SamplingConfig(), seed=0, steer=False)
    assert seen == [prompt_ids(fmt, p.opening())] * 2


def test_a_dialog_longer_than_the_context_keeps_bos_and_its_tail(post_inputs, monkeypatch):
    fmt = load_chat_format(post_inputs["tokenizer"])
    p = TaskPrompt("arithmetic", "arith:47+38", "What is 47 + 38? " * 20, "85", {"answer": 85})
    seen: list[list[int]] = []

    def fake_generate(model, prompts, max_new_tokens, **kwargs):
        seen.extend(prompts)
        return [fmt.encode("85")] * len(prompts)

    monkeypatch.setattr("factory.model.generate.generate", fake_generate)
    short = SimpleNamespace(args=SimpleNamespace(max_seq_len=64))
    full = prompt_ids(fmt, p.opening())
    assert len(full) > 64
    assert sample_responses(short, fmt, [p], 1, SamplingConfig(max_new_tokens=16), seed=0) == [["85"]]
    assert seen == [[full[0], *full[-(64 - 16 - 1):]]]  # BOS + the tail: 48 prompt tokens, room for 16 new
