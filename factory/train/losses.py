"""Training objectives: what each stage of the recipe optimizes with the one trainer.

An objective is called as ``objective(model, batch) -> (loss, metrics)``. Batch layouts:

- ``LanguageModeling``: input_ids [B, T], labels [B, T] (-100 = no loss), optional doc_ids [B, T]
  for packed sequences. Pre-training, long context, annealing, experts and SFT (SFT sets the
  prompt's labels to -100: loss on target tokens only).
- ``PairwiseRanking``: chosen_ids / rejected_ids [B, T] right-padded, chosen_len / rejected_len
  [B], optional margin [B]. The reward model (recipe: ranking loss; Llama 3 drops Llama 2's
  margin term, so margins default to 0).
- ``DirectPreference``: chosen_ids, chosen_labels, rejected_ids, rejected_labels [B, T]; labels
  are -100 on prompt and special formatting tokens (recipe: "mask out special formatting tokens").
  Loss = DPO + ``nll_coef`` x NLL of the chosen response (the recipe's regularizer).
- ``Classification``: input_ids [B, T], lengths [B], labels [B] (class ids) or [B, C] (multi-label
  0/1 floats). Llama Guard and Prompt Guard heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-position log p(label) where labels are the *next* tokens already aligned to logits.

    logits: [B, T, V]; labels: [B, T] with IGNORE where there is no target -> [B, T] (0 at IGNORE).
    """
    mask = labels != IGNORE
    safe = labels.masked_fill(~mask, 0)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return logp * mask


def shift_labels(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Align labels to next-token prediction: position t predicts labels[t + 1]."""
    shifted = torch.full_like(labels, IGNORE)
    shifted[:, :-1] = labels[:, 1:]
    return shifted


class LanguageModeling:
    """Next-token cross-entropy on positions whose label is not -100."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["input_ids"], doc_ids=batch.get("doc_ids"))
        targets = shift_labels(batch["input_ids"], batch["labels"])
        loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=IGNORE)
        return loss, {"loss": loss.item(), "target_tokens": float((targets != IGNORE).sum())}


class PairwiseRanking:
    """-log sigmoid(r_chosen - r_rejected - margin) on a scalar-output ``SequenceScorer``."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        r_chosen = model(batch["chosen_ids"], batch["chosen_len"]).squeeze(-1)
        r_rejected = model(batch["rejected_ids"], batch["rejected_len"]).squeeze(-1)
        margin = batch.get("margin", torch.zeros_like(r_chosen))
        loss = -F.logsigmoid(r_chosen - r_rejected - margin).mean()
        accuracy = (r_chosen > r_rejected).float().mean().item()
        return loss, {"loss": loss.item(), "accuracy": accuracy}


def sequence_logprob(model: nn.Module, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of log-probs of the labelled tokens of each sequence: [B]."""
    logits = model(input_ids)
    return token_logprobs(logits, shift_labels(input_ids, labels)).sum(-1)


class DirectPreference:
    """DPO against a frozen reference model, plus an NLL term on the chosen response."""

    def __init__(self, reference: nn.Module, beta: float, nll_coef: float = 0.0):
        self.reference = reference.eval().requires_grad_(False)
        self.beta = beta
        self.nll_coef = nll_coef

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        pi_c = sequence_logprob(model, batch["chosen_ids"], batch["chosen_labels"])
        pi_r = sequence_logprob(model, batch["rejected_ids"], batch["rejected_labels"])
        with torch.no_grad():
            ref_c = sequence_logprob(self.reference, batch["chosen_ids"], batch["chosen_labels"])
            ref_r = sequence_logprob(self.reference, batch["rejected_ids"], batch["rejected_labels"])
        logits = self.beta * ((pi_c - ref_c) - (pi_r - ref_r))
        dpo = -F.logsigmoid(logits).mean()
        n_chosen = (shift_labels(batch["chosen_ids"], batch["chosen_labels"]) != IGNORE).sum().clamp(min=1)
        nll = -pi_c.sum() / n_chosen
        loss = dpo + self.nll_coef * nll
        return loss, {
            "loss": loss.item(),
            "dpo_loss": dpo.item(),
            "reward_accuracy": (logits > 0).float().mean().item(),
            "reward_margin": (logits / self.beta).mean().item(),
        }


class Classification:
    """Cross-entropy over classes, or binary cross-entropy per class for multi-label targets."""

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        logits = model(batch["input_ids"], batch["lengths"])
        labels = batch["labels"]
        if labels.dim() == 2:
            loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
            accuracy = ((logits > 0) == (labels > 0.5)).float().mean().item()
        else:
            loss = F.cross_entropy(logits.float(), labels)
            accuracy = (logits.argmax(-1) == labels).float().mean().item()
        return loss, {"loss": loss.item(), "accuracy": accuracy}
