"""Triton RoPE (interpreted on CPU) against its torch reference and the model's ``apply_rope``."""

import torch

from factory.model.llama import apply_rope, rope_cos_sin
from kernels.rope import rope, rope_ref


def _grads(fn, x, cos, sin, dy):
    x = x.clone().requires_grad_()
    y = fn(x, cos, sin)
    (y * dy).sum().backward()
    return y, x.grad


def test_matches_reference_and_model_forward_and_backward():
    torch.manual_seed(0)
    b, h, t, d = 2, 3, 5, 12
    cos, sin = rope_cos_sin(d, torch.arange(t), 500_000.0)
    x, dy = torch.randn(b, h, t, d), torch.randn(b, h, t, d)
    torch.testing.assert_close(rope_ref(x, cos, sin), apply_rope(x, cos, sin), rtol=0, atol=0)
    y, gx = _grads(rope, x, cos, sin, dy)
    y_ref, gx_ref = _grads(rope_ref, x, cos, sin, dy)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-5, atol=1e-6)


def test_per_sequence_tables_of_packed_documents():
    torch.manual_seed(1)
    positions = torch.tensor([[0, 1, 2, 0, 1], [0, 1, 2, 3, 4]])  # [B, T]: restarts per document
    cos, sin = rope_cos_sin(8, positions, 10_000.0)
    cos, sin = cos[:, None], sin[:, None]  # [B, 1, T, D/2] as the model passes them
    x = torch.randn(2, 2, 5, 8).transpose(2, 3).contiguous().transpose(2, 3)  # non-contiguous input
    torch.testing.assert_close(rope(x, cos, sin), rope_ref(x, cos, sin), rtol=1e-6, atol=1e-6)
