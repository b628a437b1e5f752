"""Training objectives: what each stage of the recipe optimizes with the one trainer.

An objective is called as ``objective(model, batch) -> (loss, metrics)``. Batch layouts:

- ``LanguageModeling``: input_ids [B, T], labels [B, T] (-100 = no loss), optional doc_ids [B, T]
  for packed sequences. Pre-training, long context, annealing, experts and SFT (SFT sets the
  prompt's labels to -100: loss on target tokens only). The output projection and the
  cross-entropy are fused and chunked (``linear_cross_entropy``): logits exist only for target
  positions and only one chunk at a time, never as a full fp32 [B, T, V] tensor.
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


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The matmul dtype autocast would pick for ``x`` (bf16 inside a CPU bf16 autocast region)."""
    device = x.device.type
    return torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype


class _LinearCrossEntropy(torch.autograd.Function):
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``, chunk by chunk.

    The forward pass computes each chunk's logits [chunk, V], its loss and right away its
    gradients (softmax - onehot), then drops the logits: memory is O(chunk x V) instead of
    O(N x V), and no logits are recomputed in backward. Matmuls run in ``dtype`` (bf16 under
    autocast); log-sum-exp and the weight gradient accumulate in fp32.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk, dtype):  # hidden [N, d], weight [V, d], targets [N]
        n = hidden.shape[0]
        h, w = hidden.to(dtype), weight.to(dtype)
        grad_h = torch.empty_like(hidden)
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for s in range(0, n, chunk):
            hc, tc = h[s : s + chunk], targets[s : s + chunk]
            logits = (hc @ w.T).float()  # [c, V]
            lse = torch.logsumexp(logits, dim=-1)  # [c]
            total += (lse - logits.gather(1, tc[:, None]).squeeze(1)).sum()
            # d(mean CE)/d logits = (softmax - onehot) / N, computed in place over the logits.
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(tc.shape[0], device=tc.device), tc] -= 1.0
            dlogits = probs.div_(n).to(dtype)
            grad_h[s : s + chunk] = dlogits @ w
            grad_w += (dlogits.T @ hc).float()
        ctx.save_for_backward(grad_h, grad_w.to(weight.dtype))
        return total / n

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_out, grad_w * grad_out, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 1024
) -> torch.Tensor:
    """Mean next-token cross-entropy of ``hidden`` [N, d] through the output matrix ``weight`` [V, d].

    ``targets`` [N] must all be real (callers select target positions first). A weight partitioned
    by DeepSpeed ZeRO-3 is only materialised inside its module's forward, so for such weights
    callers use the plain path instead (``LanguageModeling`` does).
    """
    dtype = _compute_dtype(hidden)
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        with torch.autocast(hidden.device.type, enabled=False):
            return _LinearCrossEntropy.apply(hidden, weight, targets, chunk, dtype)
    total = hidden.new_zeros((), dtype=torch.float32)
    for s in range(0, hidden.shape[0], chunk):
        logits = (hidden[s : s + chunk].to(dtype) @ weight.to(dtype).T).float()
        total += F.cross_entropy(logits, targets[s : s + chunk], reduction="sum")
    return total / max(1, hidden.shape[0])


def _zero3_partitioned(param: torch.Tensor) -> bool:
    return hasattr(param, "ds_status")


class LanguageModeling:
    """Next-token cross-entropy on positions whose label is not -100 (mean over target tokens).

    Only target positions reach the output layer: padding and prompt tokens (SFT) cost no logits.
    ``chunk`` is the number of target positions whose logits exist at once.
    """

    def __init__(self, chunk: int = 1024):
        self.chunk = chunk

    def __call__(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        targets = shift_labels(batch["input_ids"], batch["labels"])
        keep = targets != IGNORE
        hidden = model.hidden_states(batch["input_ids"], doc_ids=batch.get("doc_ids"))  # [B, T, d]
        h, t = hidden[keep], targets[keep]  # [N, d], [N]
        if t.numel() == 0:
            loss = hidden.sum() * 0.0  # keeps the graph (and DDP's gradient hooks) connected
        elif _zero3_partitioned(model.output.weight):
            loss = F.cross_entropy(model.output(h).float(), t)
        else:
            loss = linear_cross_entropy(h, model.output.weight, t, self.chunk)
        return loss, {"loss": loss.item(), "target_tokens": float(t.numel())}


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
    """Sum of log-probs of the labelled tokens of each sequence: [B].

    Logits are computed for labelled positions only (no vocabulary projection of prompts or padding).
    """
    targets = shift_labels(input_ids, labels)
    keep = targets != IGNORE
    hidden = model.hidden_states(input_ids)  # [B, T, d]
    logits = model.output(hidden[keep]).float()  # [N, V]
    logp = torch.log_softmax(logits, dim=-1).gather(-1, targets[keep][:, None]).squeeze(-1)  # [N]
    rows = torch.arange(input_ids.shape[0], device=input_ids.device)[:, None].expand_as(targets)[keep]
    return torch.zeros(input_ids.shape[0], dtype=logp.dtype, device=logp.device).index_add(0, rows, logp)


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
