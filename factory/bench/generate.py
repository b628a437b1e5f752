"""Generation throughput: the factory's ``generate`` vs Hugging Face ``generate`` (recipe:
"Post-training Data", rejection sampling; "Inference").

Both contenders decode the same weights: a model of a named flavor, randomly initialized with a
fixed seed, exported with ``export_hf`` and loaded by ``transformers.LlamaForCausalLM`` from that
folder. They get the same prompt token ids of unequal lengths in the same batches (HF's
left-padded with an attention mask, as a user batches prompts for it), the same sampling
(temperature, nucleus ``top_p``, no top-k: HF's default top-k of 50 is turned off), the same
number of new tokens with no stop token (both produce exactly ``prompts * samples * new_tokens``
tokens, which is asserted) and the same ``torch.set_num_threads``. HF runs with its default cache
(``use_cache=True``, a dynamic cache) and its default attention (SDPA). Each contender runs once
untimed, then ``--repeats`` times alternating with the other; a row reports its fastest run.

The defaults are the demo profile's rejection sampling: the ``tiny`` flavor with the tokenizer's
4096 vocabulary, ``SFTConfig.sampling`` (temperature 0.8, top-p 0.95, batch 64), K = 10 samples
of each prompt (``SFTConfig.rs_samples``: ten rows of one prompt, side by side, as
``sample_responses`` passes them; the factory prefills a prompt once for its copies, HF once per
row, as it does for ``num_return_sequences``) and prompts of 20-40 tokens (a chat-formatted task
prompt), with 32 new tokens (the task evaluation's budget; rejection sampling's is 16:
``--new-tokens 16``, where the prompts' prefill weighs more). ``--samples 1`` measures distinct
prompts only (evaluation's workload).

``greedy_match`` cross-checks the export and both caches: greedy tokens of a few mixed-length
prompts decoded in one batch, factory vs HF, in fp32.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from factory.bench.cpu import cpu_settings
from factory.core.environment import apply_env
from factory.model.flavors import model_args
from factory.model.generate import generate
from factory.model.hf import export_hf
from factory.model.llama import Transformer

GREEDY_PROMPTS = 8  # prompts of the greedy cross-check
PAD_ID = 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavor", default="tiny", help="model flavor (factory.model.flavors)")
    parser.add_argument("--vocab", type=int, default=4096, help="vocabulary size")
    parser.add_argument("--batch", type=int, default=64, help="sequences decoded together")
    parser.add_argument("--prompts", type=int, default=32, help="distinct prompts to answer")
    parser.add_argument("--samples", type=int, default=10,
                        help="answers per prompt, each a row of its own (rejection sampling draws K of one prompt)")
    parser.add_argument("--prompt-len", default="20-40", help="prompt lengths in tokens, MIN-MAX (uniform)")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per prompt")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of both contenders")
    parser.add_argument("--temperature", type=float, default=0.8, help="sampling temperature (0: greedy)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus mass kept when sampling")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender (the fastest counts)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, prompts and sampling")
    parser.add_argument("--compile", action="store_true",
                        help="add a factory-compiled row (generate(compile=True); its warm-up run holds the compile)")


def _prompts(n: int, lengths: str, vocab: int, seed: int) -> list[list[int]]:
    low, high = (int(x) for x in lengths.split("-"))
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(low, high + 1, (n,), generator=gen).tolist()
    return [torch.randint(1, vocab, (size,), generator=gen).tolist() for size in sizes]


def _hf_batches(prompts: list[list[int]], batch: int) -> list[tuple[list[int], torch.Tensor, torch.Tensor]]:
    """The batches ``generate`` forms (prompts sorted by length), left-padded: (prompt indices,
    input_ids [B, width], attention_mask [B, width])."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = []
    for first in range(0, len(order), batch):
        chunk = order[first : first + batch]
        width = max(len(prompts[i]) for i in chunk)
        ids = torch.tensor([[PAD_ID] * (width - len(prompts[i])) + prompts[i] for i in chunk])
        mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in chunk])
        out.append((chunk, ids, mask))
    return out


def _hf_generate(hf, batches: list[tuple[list[int], torch.Tensor, torch.Tensor]], config) -> list[list[int]]:
    """New tokens of every prompt, in prompt order."""
    out: dict[int, list[int]] = {}
    for chunk, ids, mask in batches:
        seqs = hf.generate(input_ids=ids, attention_mask=mask, generation_config=config)  # [B, width + new]
        out.update(zip(chunk, seqs[:, ids.shape[1] :].tolist(), strict=True))
    return [out[i] for i in range(len(out))]


def _timed(run: Callable[[], list[list[int]]]) -> tuple[float, int]:
    """(wall seconds, new tokens) of one run."""
    t0 = time.perf_counter()
    new = run()
    return time.perf_counter() - t0, sum(len(x) for x in new)


def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    apply_env()
    with cpu_settings(threads=a.threads):
        return _rows(a)


def _rows(a: argparse.Namespace) -> list[dict[str, Any]]:
    from transformers import GenerationConfig, LlamaForCausalLM

    torch.manual_seed(a.seed)
    model = Transformer(model_args(a.flavor, a.vocab)).eval()
    distinct = _prompts(a.prompts, a.prompt_len, a.vocab, a.seed)
    prompts = [p for p in distinct for _ in range(a.samples)]  # a prompt's samples side by side, as RS has them
    with tempfile.TemporaryDirectory() as folder:
        export_hf(model, Path(folder))
        hf = LlamaForCausalLM.from_pretrained(folder, local_files_only=True).eval()

    def gen_config(sample: bool, new_tokens: int) -> GenerationConfig:
        sampling = {"temperature": a.temperature, "top_p": a.top_p, "top_k": 0} if sample else {}
        return GenerationConfig(do_sample=sample, **sampling, max_new_tokens=new_tokens, use_cache=True,
                                eos_token_id=None, pad_token_id=PAD_ID)

    # Greedy cross-check: the first few prompts (mixed lengths) in one batch, fp32.
    few = distinct[:GREEDY_PROMPTS]
    ours = generate(model, few, a.new_tokens, batch_size=len(few))
    theirs = _hf_generate(hf, _hf_batches(few, len(few)), gen_config(False, a.new_tokens))
    greedy_match = ours == theirs

    sample = a.temperature > 0
    hf_cfg = gen_config(sample, a.new_tokens)
    batches = _hf_batches(prompts, a.batch)

    def factory_run(compile_: bool = False) -> list[list[int]]:
        return generate(model, prompts, a.new_tokens, temperature=a.temperature, top_p=a.top_p, seed=a.seed,
                        batch_size=a.batch, compile=compile_)

    def hf_run() -> list[list[int]]:
        torch.manual_seed(a.seed)
        return _hf_generate(hf, batches, hf_cfg)

    runs = {"factory": factory_run, "hf": hf_run}
    if a.compile:
        runs["factory-compiled"] = functools.partial(factory_run, True)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    warmup: dict[str, float] = {}
    expected = len(prompts) * a.new_tokens
    for repeat in range(a.repeats + 1):  # alternate, so load changes on the machine hit all alike
        for name, fn in runs.items():
            wall, count = _timed(fn)
            if count != expected:
                raise AssertionError(f"{name} generated {count} tokens, expected {expected}")
            if repeat:
                walls[name].append(wall)
            else:  # the first run warms up: first-call allocations, lazy initialisation, compiling
                warmup[name] = wall

    # Other work slows threaded runs most: the 1-minute load average (this run included) says how busy the host was.
    common = {"load_avg_1m": os.getloadavg()[0], "flavor": a.flavor, "params": model.num_params(),
              "batch": a.batch, "prompts": a.prompts, "samples": a.samples, "prompt_len": a.prompt_len,
              "threads": a.threads, "temperature": a.temperature, "top_p": a.top_p}
    rows = [{"name": name, "tokens_per_s": expected / min(w), "wall_s": min(w), "new_tokens": expected, **common}
            for name, w in walls.items()]
    rows[0]["speedup_vs_hf"] = rows[0]["tokens_per_s"] / rows[1]["tokens_per_s"]
    rows[0]["greedy_match"] = greedy_match
    if a.compile:
        rows[2]["warmup_s"] = warmup["factory-compiled"]
    return rows
