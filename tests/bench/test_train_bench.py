"""``factory bench train`` and ``factory bench faults`` on tiny settings (no Ray in the fast test)."""

import argparse

import pytest
import torch

from factory.bench import emit, faults
from factory.bench import train as train_bench


def _args(module, *flags: str, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args([*flags, *(f"--{k.replace('_', '-')}={v}" for k, v in kw.items())])


def test_train_bench_rows_compare_factory_with_hf_on_the_same_work():
    args = _args(train_bench, "--no-compile", flavor="debug", vocab=128, seq_len=32, batch=2, steps=2, warmup=1,
                 backends="none", threads=2)
    threads = torch.get_num_threads()
    rows = train_bench.run(args)
    assert torch.get_num_threads() == threads  # the bench's 2 threads end with it
    by_name = {r["name"]: r for r in rows}
    assert {"factory", "factory-eager", "hf"} <= set(by_name) <= {"factory", "factory-eager", "hf", "hf-bf16"}
    for row in rows:
        assert row["tokens_per_s"] > 0 and row["params"] == by_name["factory"]["params"]
        assert 3.0 < row["final_loss"] < 7.0  # ~log(128) = 4.85 for an untrained model
    assert '"name": "factory"' in emit(rows, as_json=True)


@pytest.mark.parametrize(
    ("steps", "kills", "every", "expected"),
    [(24, 2, 4, [9, 17]), (12, 1, 3, [7]), (10, 3, 5, [2, 6, 8])],
)
def test_fault_bench_kills_land_between_checkpoints(steps, kills, every, expected):
    got = faults.kill_steps(steps, kills, every)
    assert got == expected
    assert all(s % every for s in got) and all(0 < s < steps for s in got)
