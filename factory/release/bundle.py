"""The ``quantized_release`` stage: the chat model as a release bundle (recipe: "Inference", FP8
quantization; "Safety characteristics", the guard models shipped beside the model).

Output folder:
- ``hf/``: the chat model in Hugging Face Llama layout with the tokenizer and chat template;
- ``fp8/``: its FFN weights in row-wise float8_e4m3fn (first and last layers kept, bounded
  scales) plus every other tensor, in the ``factory.quant.rowwise`` format;
- ``guard_int8/``: the Llama-Guard-style classifier with INT8 per-row weights;
- ``prompt_guard/``, ``code_shield/``: the other safety tools, copied as they are;
- ``README.md``: the model card, rendered from the measured metadata.
The metadata reports sizes on disk, FP8/INT8 round-trip errors, the output deltas of the
quantized models measured on random token sequences, and the dev-split task accuracy of the bundle
as users load it (``hf_dtype``) and of its FP8 weights with FP8 activations: the FP8 release gate
reads those two (``factory.gates``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field

from factory.core.files import MANIFEST
from factory.core.stage import StageConfig, StageContext
from factory.model.chat_format import load_chat_format
from factory.model.checkpoint_io import load_model, read_meta
from factory.model.hf import export_hf, import_hf
from factory.post.task_accuracy import evaluate, heldout_prompts
from factory.quant.fp8 import emulate_fp8_activations, quantize_fp8
from factory.quant.int8 import quantize_int8
from factory.quant.rowwise import load_quantized
from factory.release.model_card import CARD_FILE, render_model_card


class ReleaseConfig(StageConfig):
    """How the chat model and its safety tools are packaged and quantized."""

    name: str = Field("factory-chat", description="Release name, the model card's title.")
    license: str = Field("Apache-2.0", description="License named in the model card.")
    hf_dtype: Literal["bfloat16", "float32"] = Field(
        "bfloat16",
        description="Dtype of the Hugging Face bundle and of the tensors the FP8 folder leaves unquantized.")
    fp8_scale_ub: float = Field(
        1200.0, gt=0, description="Upper bound of the FP8 quantizing multiplier per row (Llama 3: 1200).")
    fp8_keep_edge_layers: int = Field(
        1, ge=0,
        description="Layers kept in high precision at each end of the stack (Llama 3 keeps the first and last).")
    eval_sequences: int = Field(8, ge=1, description="Random token sequences used to measure output deltas.")
    eval_seq_len: int = Field(64, ge=2, description="Length of those sequences.")
    seed: int = Field(0, description="Seed of the random sequences.")
    eval_prompts: int = Field(
        1000, ge=1, description="Dev-split prompts for the task accuracy of the bundle and of its FP8 weights.")
    eval_seed: int = Field(0, description="Seed of those prompts (same as the post-training stages' to compare).")


def _dir_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)


def _lineage(inputs: dict[str, Path]) -> dict[str, dict[str, str]]:
    """stage/key/digest of each input artifact from its manifest (empty for ad-hoc folders)."""
    refs = {}
    for name, folder in inputs.items():
        path = Path(folder) / MANIFEST
        data = json.loads(path.read_text()) if path.exists() else {}
        refs[name] = {k: data[k] for k in ("stage", "key", "digest", "code_version") if k in data}
    return refs


def _random_tokens(cfg: ReleaseConfig, vocab_size: int, seq_len: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(cfg.seed)
    return torch.randint(0, vocab_size, (cfg.eval_sequences, seq_len), generator=g)


def _output_delta(a: torch.Tensor, b: torch.Tensor) -> dict[str, float]:
    """Max/mean |a - b| and how often both pick the same top entry, over the last dimension."""
    return {
        "max_abs": (a - b).abs().max().item(),
        "mean_abs": (a - b).abs().mean().item(),
        "top1_agreement": (a.argmax(-1) == b.argmax(-1)).float().mean().item(),
    }


def run_quantized_release(cfg: ReleaseConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    chat_dir, guard_dir = Path(inputs["chat_model"]), Path(inputs["llama_guard"])
    if read_meta(chat_dir)["kind"] != "lm":
        raise ValueError(f"chat_model {chat_dir} is not a language model checkpoint")
    chat = load_model(chat_dir)
    args = chat.args
    dtype = getattr(torch, cfg.hf_dtype)

    ctx.log(f"exporting the chat model ({chat.num_params():,} params) to Hugging Face layout, {cfg.hf_dtype}")
    export_hf(chat, out / "hf", tokenizer_dir=Path(inputs["tokenizer"]), dtype=dtype)

    ctx.log("quantizing FFN weights to FP8 (row-wise)")
    fp8 = quantize_fp8(chat_dir, out / "fp8", scale_ub=cfg.fp8_scale_ub, keep_edge_layers=cfg.fp8_keep_edge_layers,
                       other_dtype=dtype)
    if not fp8["quantized_layers"]:
        ctx.log(f"the chat model has {args.n_layers} layers: none is left to quantize after keeping the edges")
    tokens = _random_tokens(cfg, args.vocab_size, min(cfg.eval_seq_len, args.max_seq_len))
    fp8_model = load_quantized(out / "fp8")
    with torch.no_grad():
        # The bundle as users load it (weights rounded to hf_dtype) against the FP8 weights, then
        # also with the FFN inputs quantized dynamically, as an FP8 GEMM would.
        reference = import_hf(out / "hf")(tokens)
        logit_delta = _output_delta(reference, fp8_model(tokens))
        emulate_fp8_activations(fp8_model, fp8["quantized_layers"], cfg.fp8_scale_ub)
        logit_delta_act = _output_delta(reference, fp8_model(tokens))
    for d in (logit_delta, logit_delta_act):
        d.update(sequences=cfg.eval_sequences, seq_len=tokens.shape[1])
    ctx.log(f"dev task accuracy of the {cfg.hf_dtype} bundle and of the FP8 weights (FP8 activations)")
    fmt, dev = load_chat_format(Path(inputs["tokenizer"])), heldout_prompts(cfg.eval_prompts, cfg.eval_seed, "dev")
    dev_accuracy = {cfg.hf_dtype: evaluate(import_hf(out / "hf").eval(), fmt, dev),
                    "fp8": evaluate(fp8_model, fmt, dev)}

    ctx.log("quantizing the guard classifier to INT8")
    guard_stats = quantize_int8(guard_dir, out / "guard_int8")
    guard, guard_int8 = load_model(guard_dir), load_quantized(out / "guard_int8")
    guard_args = guard.backbone.args
    g_tokens = _random_tokens(cfg, guard_args.vocab_size, min(cfg.eval_seq_len, guard_args.max_seq_len))
    lengths = torch.randint(1, g_tokens.shape[1] + 1, (g_tokens.shape[0],),
                            generator=torch.Generator().manual_seed(cfg.seed))
    with torch.no_grad():
        score_delta = _output_delta(guard(g_tokens, lengths), guard_int8(g_tokens, lengths))

    for name in ("prompt_guard", "code_shield"):
        # The inputs' own manifests stay behind: this artifact gets its own.
        shutil.copytree(inputs[name], out / name, ignore=shutil.ignore_patterns(MANIFEST))

    sizes = {name: _dir_size(out / name) for name in ("hf", "fp8", "guard_int8", "prompt_guard", "code_shield")}
    sizes["chat_fp32"], sizes["guard_fp32"] = _dir_size(chat_dir), _dir_size(guard_dir)
    info = {
        "name": cfg.name,
        "license": cfg.license,
        "hf_dtype": cfg.hf_dtype,
        "model": {**args.to_dict(), "params": chat.num_params()},
        "sizes_bytes": sizes,
        "fp8": {**fp8, "scale_ub": cfg.fp8_scale_ub, "logit_delta": logit_delta,
                "logit_delta_fp8_activations": logit_delta_act,
                "dev_accuracy": {name: {k: a[k] for k in ("n", "accuracy", "mean_score")}
                                 for name, a in dev_accuracy.items()}},
        "guard_int8": {**guard_stats, "score_delta": score_delta},
        "guard_labels": list(read_meta(guard_dir)["extra"].get("labels", [])),
        "guard_data": read_meta(guard_dir)["extra"].get("data_source", "not recorded"),
        "lineage": _lineage(inputs),
    }
    (out / CARD_FILE).write_text(render_model_card(info))
    ctx.log(f"release written: hf {sizes['hf']:,} B, fp8 {sizes['fp8']:,} B, "
            f"fp8 logit max delta {logit_delta['max_abs']:.3g}")
    return info
