"""Objectives: fused LM loss, reward ranking, DPO and classification on toy inputs."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from factory.model.flavors import model_args
from factory.model.llama import SequenceScorer, Transformer
from factory.train.losses import (
    IGNORE,
    Classification,
    DirectPreference,
    LanguageModeling,
    PairwiseRanking,
    linear_cross_entropy,
    shift_labels,
)

ARGS = model_args("debug", 32, max_seq_len=32)


def test_linear_cross_entropy_matches_full_logits_loss_and_gradients():
    torch.manual_seed(0)
    h = torch.randn(300, 16, requires_grad=True)
    w = torch.randn(50, 16, requires_grad=True)
    t = torch.randint(0, 50, (300,))
    loss = linear_cross_entropy(h, w, t, chunk=64)  # 5 chunks, the last one partial
    loss.backward()
    h2, w2 = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ref = F.cross_entropy(h2 @ w2.T, t)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-6)
    assert torch.allclose(h.grad, h2.grad, atol=1e-7) and torch.allclose(w.grad, w2.grad, atol=1e-7)
    with torch.no_grad():  # the evaluation path gives the same number without gradients
        assert linear_cross_entropy(h, w, t, chunk=64).item() == pytest.approx(ref.item(), rel=1e-6)


def test_language_modeling_ignores_masked_labels_and_matches_plain_cross_entropy():
    torch.manual_seed(0)
    model = Transformer(ARGS)
    ids = torch.randint(2, 32, (2, 12))
    labels = ids.clone()
    labels[:, :5] = IGNORE  # an SFT prompt: no loss on it
    loss, metrics = LanguageModeling(chunk=7)(model, {"input_ids": ids, "labels": labels})
    targets = shift_labels(ids, labels)
    ref = F.cross_entropy(model(ids).flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    assert metrics["target_tokens"] == 2 * 7  # positions 4..10 predict labels 5..11


def test_pairwise_ranking_loss_is_log_sigmoid_of_reward_gap():
    torch.manual_seed(0)
    scorer = SequenceScorer(ARGS, 1)
    ids = torch.randint(2, 32, (3, 8))
    batch = {"chosen_ids": ids, "chosen_len": torch.tensor([8, 6, 4]),
             "rejected_ids": ids.flip(1), "rejected_len": torch.tensor([8, 8, 8])}
    loss, metrics = PairwiseRanking()(scorer, batch)
    rc = scorer(ids, batch["chosen_len"]).squeeze(-1)
    rr = scorer(ids.flip(1), batch["rejected_len"]).squeeze(-1)
    assert loss.item() == pytest.approx(-F.logsigmoid(rc - rr).mean().item(), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx((rc > rr).float().mean().item())


def test_dpo_loss_decreases_and_prefers_chosen():
    torch.manual_seed(0)
    policy = Transformer(ARGS)
    objective = DirectPreference(copy.deepcopy(policy), beta=0.5, nll_coef=0.1)
    prompt = torch.tensor([[3, 4, 5, 6]])
    chosen = torch.cat([prompt, torch.tensor([[7, 8, 9, 10]])], 1)
    rejected = torch.cat([prompt, torch.tensor([[20, 21, 22, 23]])], 1)
    labels = lambda ids: torch.cat([torch.full((1, 4), IGNORE), ids[:, 4:]], 1)  # noqa: E731
    batch = {"chosen_ids": chosen, "chosen_labels": labels(chosen),
             "rejected_ids": rejected, "rejected_labels": labels(rejected)}
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    first, first_metrics = objective(policy, batch)
    assert first_metrics["dpo_loss"] == pytest.approx(math.log(2), rel=1e-5)  # policy == reference
    for _ in range(15):
        loss, metrics = objective(policy, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    last, metrics = objective(policy, batch)
    assert metrics["dpo_loss"] < 0.5
    assert metrics["reward_accuracy"] == 1.0 and metrics["reward_margin"] > 0
    assert last.item() < first.item()


def test_classification_single_and_multi_label():
    torch.manual_seed(0)
    scorer = SequenceScorer(ARGS, 3)
    ids = torch.randint(2, 32, (4, 6))
    lengths = torch.tensor([6, 5, 4, 3])
    logits = scorer(ids, lengths)
    single = torch.tensor([0, 2, 1, 2])
    loss, metrics = Classification()(scorer, {"input_ids": ids, "lengths": lengths, "labels": single})
    assert loss.item() == pytest.approx(F.cross_entropy(logits, single).item(), rel=1e-6)
    assert metrics["accuracy"] == pytest.approx((logits.argmax(-1) == single).float().mean().item())
    multi = torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], dtype=torch.float32)
    loss, _ = Classification()(scorer, {"input_ids": ids, "lengths": lengths, "labels": multi})
    assert loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(logits, multi).item(), rel=1e-6)
