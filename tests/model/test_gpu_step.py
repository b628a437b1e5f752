"""The step-MFU micro-benchmark runs (eager, on CPU, debug flavor)."""

from factory.model.gpu_step import measure_step


def test_gpu_step_benchmark_runs_eager_on_cpu():
    row = measure_step("debug", kernels=False, batch=2, seq=8, steps=1, warmup=0, peak_tflops=1.0,
                       vocab_size=50, device="cpu")
    assert row["name"] == "eager" and row["tokens_per_s"] > 0 and 0 < row["mfu"] and row["loss"] > 0
