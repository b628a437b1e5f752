"""bench generate: HF gets generate's batches left-padded, and both rows count the same tokens."""

from __future__ import annotations

import argparse

import pytest
import torch

from factory.bench import generate as bench


def test_hf_batches_are_generates_batches_left_padded():
    prompts = [[5, 6, 7], [8], [9, 10], [11, 12, 13, 14]]
    batches = bench._hf_batches(prompts, 3)
    assert [chunk for chunk, _, _ in batches] == [[1, 2, 0], [3]]  # sorted by length, as generate cuts them
    _, ids, mask = batches[0]
    assert ids.tolist() == [[0, 0, 8], [0, 9, 10], [5, 6, 7]]
    assert mask.tolist() == [[0, 0, 1], [0, 1, 1], [1, 1, 1]]
    lengths = {len(p) for p in bench._prompts(50, "3-5", 97, seed=0)}
    assert lengths == {3, 4, 5}


@pytest.mark.slow  # the first transformers model import takes ~10 s here
def test_rows_generate_the_same_token_counts_and_greedy_tokens_match():
    args = argparse.Namespace(flavor="debug", vocab=97, batch=3, prompts=5, samples=2, prompt_len="2-6", new_tokens=4,
                              threads=torch.get_num_threads(), temperature=0.8, top_p=0.9, repeats=1, seed=0,
                              compile=False)
    rows = bench.run(args)
    assert [r["name"] for r in rows] == ["factory", "hf"]
    assert all(r["new_tokens"] == 40 and r["tokens_per_s"] > 0 for r in rows)  # 5 prompts x 2 samples x 4
    assert rows[0]["greedy_match"] is True
    assert rows[0]["speedup_vs_hf"] == pytest.approx(rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"])
