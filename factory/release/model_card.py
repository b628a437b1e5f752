"""The release's model card (``README.md``), rendered from the release stage's measured metadata.

Every figure in the card comes from the metadata the stage returns (sizes on disk, quantization
errors, logit deltas) or from the input artifacts' manifests (lineage), so the card and the
manifest never disagree.
"""

from __future__ import annotations

from typing import Any

CARD_FILE = "README.md"  # the card's name in the release artifact (the Hugging Face convention)
INTENDED_USE = (
    "A small research chat model built end to end by the factory's reproduction of the Llama 3 recipe. "
    "It is meant for studying the pipeline (data, pre-training, post-training, safety, quantization), "
    "not for production use or for advice of any kind."
)
LIMITATIONS = [
    "Trained on a small offline crawl on CPU: its knowledge and fluency are very limited, and it makes things up.",
    "Post-training targets a few verifiable skills (arithmetic, short code, format constraints); "
    "other requests are out of distribution.",
    "The FP8 loader is weight-only (activations stay in high precision); the FP8 deltas above were measured on "
    "random token sequences, not on a quality benchmark.",
    "The safety classifiers are small and trained on limited data: use them as one layer of a system, "
    "never as the only protection.",
]


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def render_model_card(info: dict[str, Any]) -> str:
    """Markdown model card from the release metadata (see ``run_quantized_release``)."""
    m, fp8, guard, sizes = info["model"], info["fp8"], info["guard_int8"], info["sizes_bytes"]
    lines = [
        f"# {info['name']}",
        "",
        f"> Safety classifier (Llama Guard) trained and measured on: {info['guard_data']}.",
        "",
        "## Model details",
        f"- Architecture: dense Llama decoder (RMSNorm pre-norm, SwiGLU, RoPE θ = {m['rope_theta']:g}, "
        f"grouped-query attention {m['n_heads']} query / {m['n_kv_heads']} key-value heads)",
        f"- Parameters: {m['params']:,} ({m['n_layers']} layers, width {m['dim']}, FFN {m['ffn_hidden_dim']}, "
        f"vocabulary {m['vocab_size']:,}, context {m['max_seq_len']} tokens)",
        f"- License: {info['license']}",
        "",
        "## Files",
        "| folder | contents | size |",
        "|---|---|---|",
        f"| `hf/` | Hugging Face Llama layout ({info['hf_dtype']}), tokenizer with the Llama 3 chat template "
        f"| {_mib(sizes['hf'])} |",
        f"| `fp8/` | FFN weights in float8_e4m3fn, row-wise scales; load with `factory.quant.rowwise.load_quantized` "
        f"| {_mib(sizes['fp8'])} |",
        f"| `guard_int8/` | the safety classifier, INT8 per-row weights | {_mib(sizes['guard_int8'])} |",
        f"| `prompt_guard/` | jailbreak / prompt-injection classifier | {_mib(sizes['prompt_guard'])} |",
        f"| `code_shield/` | static-analysis policy for generated code | {_mib(sizes['code_shield'])} |",
        "",
        "Load the chat model with `transformers.AutoModelForCausalLM.from_pretrained('hf', local_files_only=True)` "
        "and `AutoTokenizer` from the same folder.",
        "",
        "## Quantization",
        f"- FP8 (float8_e4m3fn), one scale per output row, quantizing multiplier bounded at {fp8['scale_ub']:g}; "
        f"FFN layers {fp8['quantized_layers']} quantized, layers {fp8['kept_layers']} kept in {info['hf_dtype']} "
        "(Llama 3 keeps the first and last); attention, embeddings and head unquantized.",
        f"- FP8 weight round-trip: max abs error {fp8['max_abs_error']:.3g}, "
        f"relative (Frobenius) error {fp8['rel_error']:.3g}.",
        f"- Logits, {info['hf_dtype']} bundle vs FP8, over {fp8['logit_delta']['sequences']} random sequences of "
        f"{fp8['logit_delta']['seq_len']} tokens: max abs {fp8['logit_delta']['max_abs']:.3g}, "
        f"mean abs {fp8['logit_delta']['mean_abs']:.3g}, top-1 agreement {fp8['logit_delta']['top1_agreement']:.1%} "
        "(weight-only, as the loader runs it); with the FFN inputs also quantized per token (emulated FP8 GEMM): "
        f"max abs {fp8['logit_delta_fp8_activations']['max_abs']:.3g}, "
        f"top-1 agreement {fp8['logit_delta_fp8_activations']['top1_agreement']:.1%}.",
        f"- Guard INT8 (symmetric per-row): weight relative error {guard['rel_error']:.3g}; scores max abs delta "
        f"{guard['score_delta']['max_abs']:.3g}, top-label agreement {guard['score_delta']['top1_agreement']:.1%}; "
        f"size {_mib(sizes['guard_int8'])} vs {_mib(sizes['guard_fp32'])} in float32.",
        "",
        "## Intended use",
        INTENDED_USE,
        "",
        "## Safety tools",
        f"- `guard_int8/`: prompt/response classifier over {len(info['guard_labels'])} labels: "
        f"{', '.join(info['guard_labels']) or 'none recorded'}.",
        "- `prompt_guard/`: detects direct jailbreaks and indirect prompt injections in inputs.",
        "- `code_shield/`: flags insecure generated code before it is used.",
        "",
        "## Limitations",
        *[f"- {x}" for x in LIMITATIONS],
        "",
        "## Lineage",
        "| input | stage | artifact key | digest |",
        "|---|---|---|---|",
        *[
            f"| {name} | {ref.get('stage', '—')} | {ref.get('key', '—')} "
            f"| {ref.get('digest', 'not recorded (ad-hoc run)')} |"
            for name, ref in sorted(info["lineage"].items())
        ],
        "",
    ]
    return "\n".join(lines)
