"""Row-wise FP8 kernels (interpreted on CPU) against the torch reference; scale bound behaviour."""

import torch

from kernels.fp8 import FP8_E4M3_MAX, dequantize_rowwise, dequantize_rowwise_ref, quantize_rowwise, quantize_rowwise_ref


def test_kernels_match_reference_bit_for_bit():
    torch.manual_seed(0)
    x = torch.randn(6, 50) * torch.logspace(-3, 1, 6)[:, None]  # rows across four decades
    x[2] = 0.0
    q, s = quantize_rowwise(x, 1200.0)
    q_ref, s_ref = quantize_rowwise_ref(x, 1200.0)
    assert q.dtype == torch.float8_e4m3fn
    assert torch.equal(q.view(torch.uint8), q_ref.view(torch.uint8))
    torch.testing.assert_close(s, s_ref, rtol=0, atol=0)
    torch.testing.assert_close(dequantize_rowwise(q, s), dequantize_rowwise_ref(q_ref, s_ref), rtol=0, atol=0)


def test_scale_bound_and_round_trip_error():
    torch.manual_seed(0)
    big = torch.randn(4, 64)  # amax ~ 2-3: multiplier 448 / amax < 1200, full range
    small = 1e-3 * torch.randn(4, 64)  # multiplier would be ~1e5: bounded at 1200
    for x in (big, small):
        q, s = quantize_rowwise_ref(x, 1200.0)
        assert (1.0 / s <= 1200.0 + 1e-3).all()
        err = (dequantize_rowwise_ref(q, s) - x).abs()
        # e4m3 keeps 3 mantissa bits: relative error <= 2^-4 for normal values.
        assert (err <= x.abs() * 2**-4 + 2**-9 * s[:, None] + 1e-12).all()
    q, s = quantize_rowwise_ref(big, 1200.0)
    assert torch.allclose(q.float().abs().amax(dim=1), torch.full((4,), FP8_E4M3_MAX))
    assert torch.all(quantize_rowwise_ref(torch.zeros(2, 8), 1200.0)[0].float() == 0)
