"""Triton RMSNorm (interpreted on CPU) against its torch reference and the model's RMSNorm."""

import torch

import kernels.rmsnorm
from factory.model.llama import RMSNorm
from kernels.rmsnorm import rmsnorm, rmsnorm_ref


def test_reference_is_the_model_norm():
    norm = RMSNorm(24, 1e-5)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 5, 24)
    torch.testing.assert_close(rmsnorm_ref(x, norm.weight, 1e-5), norm(x), rtol=0, atol=0)


def test_forward_and_grads_match_reference():
    torch.manual_seed(0)
    x = torch.randn(3, 7, 40, requires_grad=True)  # N not a power of two: masked columns
    w = (torch.rand(40) + 0.5).requires_grad_()
    dy = torch.randn(3, 7, 40)
    y = rmsnorm(x, w, 1e-5)
    (y * dy).sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    y_ref = rmsnorm_ref(x, w, 1e-5)
    (y_ref * dy).sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gx, x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-5)


def test_bf16_input_keeps_reference_dtype():
    x = torch.randn(4, 16).to(torch.bfloat16)
    w = torch.rand(16) + 0.5
    y, y_ref = rmsnorm(x, w, 1e-5), rmsnorm_ref(x, w, 1e-5)
    assert y.dtype == y_ref.dtype == torch.float32
    torch.testing.assert_close(y, y_ref, rtol=1e-2, atol=1e-2)


def test_backward_with_several_rows_per_program(monkeypatch):
    monkeypatch.setattr(kernels.rmsnorm, "BWD_PROGRAMS", 4)
    torch.manual_seed(1)
    x = torch.randn(10, 8, requires_grad=True)  # 4 programs x 3 rows, the last two rows masked
    w = (torch.rand(8) + 0.5).requires_grad_()
    rmsnorm(x, w, 1e-5).sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    rmsnorm_ref(x, w, 1e-5).sum().backward()
    torch.testing.assert_close(gx, x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, w.grad, rtol=1e-4, atol=1e-4)
