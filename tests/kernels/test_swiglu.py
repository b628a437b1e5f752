"""Triton SwiGLU gate (interpreted on CPU) against its torch reference."""

import torch

from kernels.swiglu import swiglu, swiglu_ref


def test_forward_and_grads_match_reference():
    torch.manual_seed(0)
    a = (3 * torch.randn(3, 5, 700)).requires_grad_()  # > one 1024 block: masked tail
    b = torch.randn(3, 5, 700, requires_grad=True)
    dy = torch.randn(3, 5, 700)
    y = swiglu(a, b)
    (y * dy).sum().backward()
    ga, gb = a.grad.clone(), b.grad.clone()
    a.grad = b.grad = None
    y_ref = swiglu_ref(a, b)
    (y_ref * dy).sum().backward()
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ga, a.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gb, b.grad, rtol=1e-5, atol=1e-6)
