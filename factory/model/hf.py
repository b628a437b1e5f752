"""Hugging Face Llama compatibility: export to and import from the ``LlamaForCausalLM`` layout
(recipe: "Model Architecture"; the release bundle of "Inference").

Our parameter names follow Meta's reference code; the mapping to Hugging Face names is one table.
Both sides use the "rotate half" RoPE layout (``factory.model.llama.apply_rope``), so the query and
key projections are copied without the permutation that Meta's interleaved checkpoints need; the
round-trip tests check logits within 1e-4 in both directions.

An exported folder holds ``model.safetensors``, ``config.json``, ``generation_config.json`` and,
when a tokenizer artifact is given, ``tokenizer.json``, ``tokenizer_config.json`` (with the chat
template, BOS/EOS and ``model_max_length``) and ``special_tokens_map.json``, so
``AutoModelForCausalLM`` and ``AutoTokenizer`` load it with ``local_files_only=True``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from factory.model import tokenizer_files as T
from factory.model.llama import ModelArgs, Transformer

HF_WEIGHTS = "model.safetensors"
HF_WEIGHTS_INDEX = "model.safetensors.index.json"

# Per-layer parameter names: ours -> Hugging Face's.
_LAYER_NAMES = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_TOP_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
# ModelArgs fields -> LlamaConfig fields (RoPE θ lives in LlamaConfig.rope_parameters).
_CONFIG_FIELDS = {
    "dim": "hidden_size",
    "n_layers": "num_hidden_layers",
    "n_heads": "num_attention_heads",
    "n_kv_heads": "num_key_value_heads",
    "vocab_size": "vocab_size",
    "ffn_hidden_dim": "intermediate_size",
    "norm_eps": "rms_norm_eps",
    "max_seq_len": "max_position_embeddings",
}
_LAYER_RE = re.compile(r"^layers\.(\d+)\.(.+)$")
_HF_LAYER_RE = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def to_hf_name(name: str) -> str:
    """Our state-dict key -> the Hugging Face Llama key."""
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    m = _LAYER_RE.match(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    raise KeyError(f"no Hugging Face name for parameter {name!r}")


def from_hf_name(name: str) -> str:
    """Hugging Face Llama key -> our state-dict key."""
    for ours, theirs in _TOP_NAMES.items():
        if name == theirs:
            return ours
    m = _HF_LAYER_RE.match(name)
    if m:
        for ours, theirs in _LAYER_NAMES.items():
            if m.group(2) == theirs:
                return f"layers.{m.group(1)}.{ours}"
    raise KeyError(f"unexpected tensor {name!r} in a Hugging Face Llama checkpoint")


def hf_config(args: ModelArgs, dtype: torch.dtype, bos_token_id: int | None, eos_token_id: int | list[int] | None):
    """The ``transformers.LlamaConfig`` of a model shape (untied embeddings, no biases, plain RoPE)."""
    from transformers import LlamaConfig

    return LlamaConfig(
        **{theirs: getattr(args, ours) for ours, theirs in _CONFIG_FIELDS.items()},
        head_dim=args.head_dim,
        hidden_act="silu",
        rope_theta=args.rope_theta,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        dtype=str(dtype).removeprefix("torch."),
    )


def export_hf(model: Transformer, out_dir: Path, *, tokenizer_dir: Path | None = None,
              dtype: torch.dtype = torch.float32) -> None:
    """Write ``model`` (and the tokenizer artifact, if given) as a Hugging Face Llama folder."""
    from transformers import GenerationConfig

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = {to_hf_name(k): v.detach().to(dtype).contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(out_dir / HF_WEIGHTS), metadata={"format": "pt"})
    bos_id, eos_ids = None, None
    if tokenizer_dir is not None:
        bos_id, eos_ids = _export_tokenizer(Path(tokenizer_dir), out_dir, model.args.max_seq_len)
    hf_config(model.args, dtype, bos_id, eos_ids).save_pretrained(out_dir)
    GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_ids, pad_token_id=eos_ids[-1] if eos_ids else None,
                     do_sample=False).save_pretrained(out_dir)


def _export_tokenizer(tokenizer_dir: Path, out_dir: Path, max_len: int) -> tuple[int, list[int]]:
    """Copy the tokenizer and write the transformers-side configs -> (BOS id, EOS ids for generation)."""
    for name in (T.TOKENIZER_FILE, T.SPECIAL_TOKENS_FILE, T.CHAT_TEMPLATE_FILE):
        if not (tokenizer_dir / name).exists():
            raise FileNotFoundError(f"tokenizer artifact {tokenizer_dir} has no {name}")
    special = T.load_special_tokens(tokenizer_dir)
    missing = [t for t in (T.BEGIN_OF_TEXT, T.END_OF_TEXT, T.EOM, T.EOT) if t not in special]
    if missing:
        raise ValueError(f"tokenizer in {tokenizer_dir} lacks the Llama 3 special tokens {missing}")
    shutil.copyfile(tokenizer_dir / T.TOKENIZER_FILE, out_dir / T.TOKENIZER_FILE)
    # A chat model ends its turn with <|eot_id|>: that is the EOS a chat client stops on.
    names = {"bos_token": T.BEGIN_OF_TEXT, "eos_token": T.EOT}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        **names,
        "model_max_length": max_len,
        "clean_up_tokenization_spaces": False,
        "model_input_names": ["input_ids", "attention_mask"],
        "chat_template": (tokenizer_dir / T.CHAT_TEMPLATE_FILE).read_text(),
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (out_dir / "special_tokens_map.json").write_text(json.dumps(names, indent=2))
    # Generation stops on any end of turn/message/text, as Llama 3's own generation config does.
    return special[T.BEGIN_OF_TEXT], [special[T.END_OF_TEXT], special[T.EOM], special[T.EOT]]


def import_hf(folder: Path) -> Transformer:
    """Load a Hugging Face Llama folder (single or sharded safetensors) as our ``Transformer``."""
    from transformers import LlamaConfig

    folder = Path(folder)
    cfg = LlamaConfig.from_pretrained(folder, local_files_only=True)
    rope = cfg.rope_parameters or {}
    unsupported = {
        "rope_type": rope.get("rope_type", "default") != "default",
        "hidden_act": cfg.hidden_act != "silu",
        "attention_bias": bool(cfg.attention_bias),
        "mlp_bias": bool(cfg.mlp_bias),
        "head_dim": cfg.head_dim != cfg.hidden_size // cfg.num_attention_heads,
    }
    if any(unsupported.values()):
        raise ValueError(f"{folder}: unsupported Llama variant: {[k for k, v in unsupported.items() if v]}")
    args = ModelArgs(**{ours: getattr(cfg, theirs) for ours, theirs in _CONFIG_FIELDS.items()},
                     rope_theta=float(rope["rope_theta"]))
    hf_state = _load_hf_state(folder)
    if cfg.tie_word_embeddings and "lm_head.weight" not in hf_state:
        hf_state["lm_head.weight"] = hf_state["model.embed_tokens.weight"]
    model = Transformer(args)
    state = {from_hf_name(k): v.to(torch.float32) for k, v in hf_state.items() if not k.endswith("rotary_emb.inv_freq")}
    model.load_state_dict(state)
    return model.eval()


def _load_hf_state(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / HF_WEIGHTS).exists():
        return load_file(str(folder / HF_WEIGHTS))
    if (folder / HF_WEIGHTS_INDEX).exists():
        shards = sorted(set(json.loads((folder / HF_WEIGHTS_INDEX).read_text())["weight_map"].values()))
        return {k: v for shard in shards for k, v in load_file(str(folder / shard)).items()}
    raise FileNotFoundError(f"{folder} has neither {HF_WEIGHTS} nor {HF_WEIGHTS_INDEX}")
