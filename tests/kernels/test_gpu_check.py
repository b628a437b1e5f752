"""The prepared GPU check script runs end to end on CPU (interpreter, tiny shapes, no timing)."""

from kernels.gpu_check import check_kernels

TINY = {"dim": 16, "ffn": 24, "heads": 2, "head_dim": 8, "seq": 4, "tokens": 8}


def test_gpu_check_rows_on_cpu():
    import torch

    rows = check_kernels(torch.float32, TINY, device="cpu", timer=lambda fn: (fn(), 0.0)[1])
    assert [r["name"] for r in rows] == ["rmsnorm", "rope", "swiglu", "fp8_quantize_rowwise"]
    assert all(r["ok"] for r in rows), rows
