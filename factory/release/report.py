"""The ``eval_report`` stage: one report over the whole herd (recipe: "Results" — pre-trained,
post-trained and safety evaluations; "Inference" — FP8 quality; "Llama Guard 3", INT8 guard).

Sections, each computed here from the upstream artifacts:
- ``perplexity``: validation perplexity per data-mix stream of the base, long-context, annealed,
  expert and chat models (``factory.eval.perplexity``);
- ``experts``: the code and multilingual experts against the base they branched from, on their
  domain's validation stream, on the other streams, and on their domain's task family by the
  likelihood of the reference answers (``factory.release.expert_eval``);
- ``niah``: needle-in-a-haystack retrieval per depth x length for every model whose context holds
  the lengths, with a needle wording and filler long-context training never saw (``factory.eval.niah``);
- ``tasks``: verifiable-prompt accuracy on the ``test`` split of each SFT and DPO round and the
  chat model (``factory.post.task_accuracy``), per family with its 95% interval, the same prompts
  for every model (stages and release gates read the ``dev`` split, never these);
- ``sft_data``: each SFT round's dialogs by source, rejection-sampled vs synthetic;
- ``rm_round_preference``: how often the last round's reward model prefers round k's DPO answer
  to round k-1's on the test prompts (ties count half);
- ``guards``: Llama Guard unsafe-flag precision / recall / F1 / FPR and per-category recall, the
  same for its INT8 release, and Prompt Guard attack detection, on the held-out seed examples
  saved beside each guard;
- ``quantization``: the release's bf16 Hugging Face bundle and its FP8 weights against the fp32
  chat model on validation windows (perplexity, logit deltas, top-1 agreement).

Output: ``report.json`` (everything), ``report.md`` (tables), PNG plots; the metadata holds the
headline numbers.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from factory.core.stage import StageConfig, StageContext
from factory.post.round_assets import reward_key
from factory.post.sft_data import SOURCES, source_counts
from factory.release.expert_eval import BASE, EXPERTS, answer_nll, expert_rows

PRETRAINED = ("base_checkpoint", "long_context_checkpoint", "annealed_checkpoint")


class EvalConfig(StageConfig):
    """Sizes of each evaluation; the same values give the same prompts and windows for every model."""

    ppl_seq_len: int = Field(
        128, description="Window length of the perplexity evaluation (capped at each model's context).")
    ppl_max_windows: int = Field(32, description="Most validation windows per stream.")
    niah_lengths: list[int] = Field([128, 256, 512], description="Prompt lengths of the needle-in-a-haystack table.")
    niah_depths: list[float] = Field(
        [0.0, 0.25, 0.5, 0.75, 1.0], description="Relative needle depths (0 = start, 1 = end).")
    niah_trials: int = Field(4, description="Needle examples per cell.")
    niah_distractors: int = Field(9, description="Wrong keys each true key is ranked against.")
    niah_key_digits: int = Field(4, description="Digits of a pass key.")
    task_prompts: int = Field(
        4000, description="Test-split verifiable prompts per model, evenly over tasks (1,000 a family: ±3 points).")
    quant_windows: int = Field(8, description="Validation windows for the FP8-vs-chat logit comparison.")
    guard_batch_size: int = Field(32, description="Inputs per forward pass of the guards.")
    seed: int = Field(0, description="Seed of NIAH keys and task prompts.")


def _interval(t: dict[str, Any]) -> str:
    return f"{t['accuracy']:.3f} ± {t['ci95']:.3f}"


def _sampled(c: dict[str, Any] | None) -> str:
    if c is None:
        return "—"
    return f"{c['rejection_sampling']}/{c['rejection_sampling'] + c['synthetic']} ({c['sampled_share']:.0%})"


def sft_data_section(folders: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Per SFT round: its dialogs by source (``sft_data.jsonl``) and the share sampled from the policy,
    overall and per task family."""
    from factory.post.rounds import SFT_DATA_FILE

    return {name: source_counts([json.loads(line) for line in (folder / SFT_DATA_FILE).read_text().splitlines()
                                 if line])
            for name, folder in folders.items()}


def rm_round_preference_section(rm_dir: Path, folders: dict[str, Path], tokenizer_dir: Path,
                                cfg: EvalConfig) -> dict[str, float]:
    """For consecutive DPO rounds (``folders`` in round order): the share of test prompts on which
    the reward model scores round k's greedy answer above round k-1's."""
    from factory.model.chat_format import load_chat_format
    from factory.model.checkpoint_io import load_model
    from factory.post.reward import reward_scores
    from factory.post.sampling import load_policy
    from factory.post.task_accuracy import greedy_answers, heldout_prompts

    if len(folders) < 2:
        return {}
    fmt = load_chat_format(tokenizer_dir)
    prompts = heldout_prompts(cfg.task_prompts, cfg.seed, "test")
    rm = load_model(rm_dir)
    rewards = {name: reward_scores(rm, fmt, list(zip([p.opening() for p in prompts],
                                                     greedy_answers(load_policy(folder), fmt, prompts), strict=True)))
               for name, folder in folders.items()}
    names = list(folders)
    return {f"{new}_over_{old}": round(float(np.mean([(a > b) + 0.5 * (a == b)
                                                      for a, b in zip(rewards[new], rewards[old], strict=True)])), 4)
            for old, new in zip(names, names[1:], strict=False)}


def _rounds(inputs: dict[str, Path]) -> list[str]:
    """Post-training stages in recipe order: sft_round_1, dpo_round_1, sft_round_2, ..."""
    found = [(int(m.group(2)), m.group(1) == "dpo", k)
             for k in inputs if (m := re.fullmatch(r"(sft|dpo)_round_(\d+)", k))]
    return [k for _, _, k in sorted(found)]


def _validation_streams(mix_dir: Path) -> dict[str, np.ndarray]:
    from factory.train.token_shards import load_stream, stream_names

    streams = {n: load_stream(mix_dir, n, "validation") for n in stream_names(mix_dir)}
    streams = {n: s for n, s in streams.items() if len(s)}
    if not streams:
        raise ValueError(f"data_mix {mix_dir} has no validation tokens")
    return streams


def perplexity_section(models: dict[str, torch.nn.Module], streams: dict[str, np.ndarray], cfg: EvalConfig,
                       eot_id: int) -> dict[str, Any]:
    from factory.eval.perplexity import stream_losses

    out: dict[str, Any] = {}
    for name, model in models.items():
        seq_len = min(cfg.ppl_seq_len, model.args.max_seq_len)
        nll = stream_losses(model, streams, seq_len, eot_id=eot_id, max_windows=cfg.ppl_max_windows)
        out[name] = {
            "seq_len": seq_len,
            "ppl": {s: round(math.exp(v), 3) for s, v in nll.items()},
            "mean_ppl": round(math.exp(float(np.mean(list(nll.values())))), 3) if nll else None,
        }
    return out


def experts_section(models: dict[str, torch.nn.Module], ppl: dict[str, Any], tokenizer_dir: Path,
                    cfg: EvalConfig) -> dict[str, Any]:
    """Each expert against ``base_checkpoint``: perplexity rows from ``ppl`` and, for an expert whose
    domain has a task family, the reference answers' likelihood on that family's test prompts."""
    from factory.model.chat_format import load_chat_format
    from factory.post.task_accuracy import heldout_prompts

    fmt = load_chat_format(tokenizer_dir)
    test = heldout_prompts(cfg.task_prompts, cfg.seed, "test")  # the tasks section's prompts
    task_nll = {}
    for family in sorted({f for _, f in EXPERTS.values() if f}):
        prompts = [p for p in test if p.task == family]
        for name in (BASE, *[e for e, (_, f) in EXPERTS.items() if f == family]):
            task_nll[name] = answer_nll(models[name], fmt, prompts)
    return expert_rows(ppl, task_nll)


def niah_section(models: dict[str, torch.nn.Module], streams: dict[str, np.ndarray], cfg: EvalConfig,
                 encode, eot_id: int) -> dict[str, Any]:
    from factory.eval.niah import HELD_OUT_TEMPLATE, NiahBuilder, niah_table

    # The held-out wording on validation filler: long-context training saw neither.
    builder = NiahBuilder(encode, max(streams.values(), key=len), eot_id, cfg.niah_key_digits, HELD_OUT_TEMPLATE)
    out: dict[str, Any] = {}
    for name, model in models.items():
        lengths = [n for n in cfg.niah_lengths if builder.min_length() <= n <= model.args.max_seq_len]
        if lengths:
            out[name] = niah_table(model, builder, lengths, cfg.niah_depths, trials=cfg.niah_trials,
                                   n_distractors=cfg.niah_distractors, seed=cfg.seed)
        else:
            out[name] = {"skipped": f"context {model.args.max_seq_len} holds none of {cfg.niah_lengths} "
                                    f"(a needle needs {builder.min_length()} tokens)"}
    return out


def tasks_section(folders: dict[str, Path], tokenizer_dir: Path, cfg: EvalConfig) -> dict[str, Any]:
    from factory.post.task_accuracy import task_accuracy

    return {name: task_accuracy(folder, tokenizer_dir, cfg.task_prompts, cfg.seed, "test")
            for name, folder in folders.items()}


def guards_section(guard_dir: Path, prompt_guard_dir: Path, release_dir: Path, cfg: EvalConfig) -> dict[str, Any]:
    from factory.model.checkpoint_io import read_meta
    from factory.quant.rowwise import load_quantized
    from factory.safety import guard as G
    from factory.safety import prompt_guard as PG

    held = G.read_held_out(guard_dir)
    fp32 = G.LlamaGuard.load(guard_dir, cfg.guard_batch_size)
    int8 = G.LlamaGuard.load(guard_dir, cfg.guard_batch_size, model=load_quantized(release_dir / "guard_int8"))
    prompts, responses = [e.prompt for e in held], [e.response for e in held]
    v32, v8 = fp32.classify(prompts, responses), int8.classify(prompts, responses)
    out: dict[str, Any] = {
        "llama_guard_data": read_meta(guard_dir)["extra"].get("data_source", "not recorded"),
        "llama_guard": G.evaluate(fp32, held),
        "llama_guard_int8": G.evaluate(int8, held),
        "int8_verdict_agreement": round(
            float(np.mean([a["unsafe"] == b["unsafe"] for a, b in zip(v32, v8, strict=True)])), 4),
        "held_out_examples": len(held),
    }
    texts, labels = PG.read_held_out(prompt_guard_dir)
    out["prompt_guard"] = PG.evaluate(PG.load_prompt_guard(prompt_guard_dir, cfg.guard_batch_size), texts, labels)
    return out


@torch.no_grad()
def quantization_section(chat: torch.nn.Module, release_dir: Path, streams: dict[str, np.ndarray], cfg: EvalConfig,
                         eot_id: int) -> dict[str, Any]:
    """The release's bf16 Hugging Face bundle and FP8 weights against the fp32 chat model."""
    from factory.eval.perplexity import stream_losses
    from factory.model.hf import import_hf
    from factory.quant.rowwise import load_quantized

    variants = {"chat_fp32": chat, "bf16": import_hf(release_dir / "hf"), "fp8": load_quantized(release_dir / "fp8")}
    seq_len = min(cfg.ppl_seq_len, chat.args.max_seq_len)
    ppl = {name: {s: math.exp(v) for s, v in stream_losses(m, streams, seq_len, eot_id=eot_id,
                                                            max_windows=cfg.ppl_max_windows).items()}
           for name, m in variants.items()}
    tokens = np.concatenate(list(streams.values()))
    n = min(cfg.quant_windows, len(tokens) // seq_len)
    windows = torch.from_numpy(tokens[: n * seq_len].astype(np.int64).reshape(n, seq_len))
    logits = {name: m(windows).float() for name, m in variants.items()}
    out: dict[str, Any] = {"ppl": {k: {s: round(v, 3) for s, v in p.items()} for k, p in ppl.items()},
                           "windows": n, "seq_len": seq_len}
    for name in ("bf16", "fp8"):
        out[name] = {
            "ppl_rel_delta": {s: round(ppl[name][s] / ppl["chat_fp32"][s] - 1.0, 5) for s in ppl["chat_fp32"]},
            "logit_max_abs_delta": round(float((logits[name] - logits["chat_fp32"]).abs().max()), 5),
            "logit_mean_abs_delta": round(float((logits[name] - logits["chat_fp32"]).abs().mean()), 6),
            "top1_agreement": round(
                float((logits[name].argmax(-1) == logits["chat_fp32"].argmax(-1)).float().mean()), 4),
        }
    out["fp8_vs_bf16_top1_agreement"] = round(
        float((logits["fp8"].argmax(-1) == logits["bf16"].argmax(-1)).float().mean()), 4)
    return out


def _plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    ppl = report["perplexity"]
    streams = sorted({s for m in ppl.values() for s in m["ppl"]})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / max(1, len(ppl))
    for i, (name, m) in enumerate(ppl.items()):
        ax.bar([j + i * width for j in range(len(streams))], [m["ppl"].get(s, 0) for s in streams], width, label=name)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(streams))], streams)
    ax.set_ylabel("validation perplexity")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "perplexity.png", dpi=100)
    written.append("perplexity.png")

    experts = report["experts"]
    if experts:
        fig, ax = plt.subplots(figsize=(6, 3))
        bars = {"own domain": "domain_ppl_rel_change", "other streams": "other_streams_ppl_rel_change"}
        for i, (label, key) in enumerate(bars.items()):
            ax.bar([j + i * 0.4 for j in range(len(experts))], [100 * (r[key] or 0) for r in experts.values()], 0.4,
                   label=label)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_xticks([j + 0.2 for j in range(len(experts))], list(experts))
        ax.set_ylabel("perplexity change vs base (%)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "experts.png", dpi=100)
        written.append("experts.png")

    tables = {k: v for k, v in report["niah"].items() if "table" in v}
    if tables:
        fig, axes = plt.subplots(1, len(tables), figsize=(3.2 * len(tables), 3), squeeze=False)
        for ax, (name, t) in zip(axes[0], tables.items(), strict=True):
            depths, lengths = list(t["table"]), list(t["per_length"])
            grid = np.array([[t["table"][d][n] for n in lengths] for d in depths])
            ax.imshow(grid, vmin=0, vmax=1, cmap="RdYlGn", aspect="auto")
            ax.set_xticks(range(len(lengths)), lengths)
            ax.set_yticks(range(len(depths)), depths)
            ax.set_xlabel("length")
            ax.set_ylabel("depth")
            ax.set_title(name, fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "niah.png", dpi=100)
        written.append("niah.png")

    tasks = report["tasks"]
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.plot(list(tasks), [t["accuracy"] for t in tasks.values()], marker="o", label="accuracy")
    ax.plot(list(tasks), [t["mean_score"] for t in tasks.values()], marker="s", label="mean score")
    ax.set_ylim(0, 1)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "tasks.png", dpi=100)
    written.append("tasks.png")

    g = report["guards"]
    rows = {"llama_guard": g["llama_guard"], "llama_guard_int8": g["llama_guard_int8"],
            "prompt_guard": g["prompt_guard"]["attack"]}
    keys = ("precision", "recall", "f1", "fpr")
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, (name, m) in enumerate(rows.items()):
        ax.bar([j + i * 0.27 for j in range(len(keys))], [m[k] for k in keys], 0.27, label=name)
    ax.set_xticks([j + 0.27 for j in range(len(keys))], keys)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "guards.png", dpi=100)
    written.append("guards.png")
    plt.close("all")
    return written


def _detection_row(name: str, m: dict[str, Any]) -> str:
    """A table row of ``binary_metrics``; "—" where a set has no unsafe rows (precision, recall, F1)
    or no safe rows (FPR), which ``binary_metrics`` writes as 0."""
    caught = ("—",) * 3 if not m["positives"] else (m["precision"], m["recall"], m["f1"])
    fpr = m["fpr"] if m["negatives"] else "—"
    return f"| {name} | {' | '.join(map(str, caught))} | {fpr} |"


def _markdown(report: dict[str, Any]) -> str:
    lines = ["# Evaluation report", ""]
    ppl = report["perplexity"]
    streams = sorted({s for m in ppl.values() for s in m["ppl"]})
    lines += ["## Validation perplexity", "", "| model | " + " | ".join(streams) + " | mean |",
              "|---" * (len(streams) + 2) + "|"]
    lines += [f"| {n} | " + " | ".join(str(m["ppl"].get(s, "")) for s in streams) + f" | {m['mean_ppl']} |"
              for n, m in ppl.items()]
    lines += ["", "## Domain experts vs base_checkpoint", "",
              "| expert | domain | base ppl | expert ppl | change | other streams | task | base answer NLL "
              "| expert answer NLL |", "|---" * 9 + "|"]
    lines += [f"| {n} | {r['domain']} | {r['base_ppl']} | {r['expert_ppl']} | {r['domain_ppl_rel_change']:+.1%} | "
              + (f"{r['other_streams_ppl_rel_change']:+.1%}" if r["other_streams_ppl_rel_change"] is not None else "")
              + f" | {r['task_family'] or 'none yet'} | {r.get('base_answer_nll', '')}"
              + f" | {r.get('expert_answer_nll', '')} |"
              for n, r in report["experts"].items()]
    lines += ["", "## Needle in a haystack (retrieval accuracy by length; held-out wording, validation filler)", ""]
    for name, t in report["niah"].items():
        if "table" in t:
            lines.append(f"- {name}: " + ", ".join(f"{n}: {v:.2f}" for n, v in t["per_length"].items())
                         + f" (mean {t['mean']:.2f}, chance {t['chance']:.2f})")
        else:
            lines.append(f"- {name}: {t['skipped']}")
    families = sorted({k for t in report["tasks"].values() for k, v in t.items() if isinstance(v, dict)})
    lines += ["", "## Held-out task accuracy (test split, ± 95% interval)", "",
              "| model | accuracy | " + " | ".join(families) + " | mean score | n |",
              "|---|---|" + "---|" * len(families) + "---|---|"]
    lines += [f"| {n} | {_interval(t)} | " + " | ".join(_interval(t[f]) if f in t else "" for f in families)
              + f" | {t['mean_score']} | {t['n']} |" for n, t in report["tasks"].items()]
    lines += ["", "## Reward model's preference for the newer round (test prompts)", ""]
    lines += [f"- {pair}: {share}" for pair, share in report["rm_round_preference"].items()]
    lines += ["", "## SFT data per round", "", "| round | " + " | ".join(SOURCES) + " | sampled share |",
              "|---|" + "---|" * len(SOURCES) + "---|"]
    lines += [f"| {n} | " + " | ".join(str(c[s]) for s in SOURCES) + f" | {c['sampled_share']} |"
              for n, c in report["sft_data"].items()]
    sft_families = sorted({t for c in report["sft_data"].values() for t in c["per_family"]})
    lines += ["", "Per family: sampled by the policy / all dialogs (share).", "",
              "| round | " + " | ".join(sft_families) + " |", "|---|" + "---|" * len(sft_families)]
    lines += [f"| {n} | " + " | ".join(_sampled(c["per_family"].get(t)) for t in sft_families) + " |"
              for n, c in report["sft_data"].items()]
    g = report["guards"]
    lines += ["", f"## Safety classifiers (held-out examples: {g['held_out_examples']})", "",
              f"Llama Guard data: {g['llama_guard_data']}.", "",
              "| classifier | precision | recall | F1 | FPR |", "|---|---|---|---|---|"]
    for name, m in (("Llama Guard", g["llama_guard"]), ("Llama Guard INT8", g["llama_guard_int8"]),
                    ("Prompt Guard (attack vs benign)", g["prompt_guard"]["attack"]),
                    *((f"Llama Guard on {k.removeprefix('public:')}", m)
                      for k, m in g["llama_guard"]["by_set"].items())):
        lines.append(_detection_row(name, m))
    lines += ["", f"INT8 / fp32 unsafe-verdict agreement: {g['int8_verdict_agreement']}", "",
              "Per-category recall (Llama Guard): "
              + ", ".join(f"{c} {v}" for c, v in g["llama_guard"]["category_recall"].items())]
    q = report["quantization"]
    lines += ["", f"## Release precision vs the fp32 chat model ({q['windows']} windows of {q['seq_len']} tokens)", "",
              "| weights | ppl relative delta | max abs logit delta | mean abs logit delta | top-1 agreement |",
              "|---|---|---|---|---|"]
    for name in ("bf16", "fp8"):
        d = q[name]
        lines.append(f"| {name} | {d['ppl_rel_delta']} | {d['logit_max_abs_delta']} | {d['logit_mean_abs_delta']} "
                     f"| {d['top1_agreement']} |")
    lines += ["", f"FP8 vs bf16 top-1 agreement: {q['fp8_vs_bf16_top1_agreement']}", ""]
    return "\n".join(lines)


def headline(report: dict[str, Any]) -> dict[str, Any]:
    """The numbers Dagster shows: one per section."""
    g, q = report["guards"], report["quantization"]["fp8"]
    rounds = [k for k in report["tasks"] if k != "chat_model"]
    return {
        "ppl": {n: m["mean_ppl"] for n, m in report["perplexity"].items()},
        "niah_mean": {n: t["mean"] for n, t in report["niah"].items() if "table" in t},
        "expert_domain_ppl_rel_change": {n: r["domain_ppl_rel_change"] for n, r in report["experts"].items()},
        "task_accuracy_chat": report["tasks"]["chat_model"]["accuracy"],
        "task_accuracy_first_round": report["tasks"][rounds[0]]["accuracy"] if rounds else None,
        "llama_guard_f1": g["llama_guard"]["f1"],
        "llama_guard_fpr": g["llama_guard"]["fpr"],
        "llama_guard_int8_f1": g["llama_guard_int8"]["f1"],
        "prompt_guard_attack_f1": g["prompt_guard"]["attack"]["f1"],
        "fp8_top1_agreement": q["top1_agreement"],
        "fp8_ppl_rel_delta_max": max(q["ppl_rel_delta"].values(), key=abs) if q["ppl_rel_delta"] else None,
    }


def run_eval_report(cfg: EvalConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    from factory.model.checkpoint_io import load_model
    from factory.model.tokenizer_files import tokenizer_info

    info = tokenizer_info(inputs["tokenizer"])
    streams = _validation_streams(inputs["data_mix"])
    models = {name: load_model(inputs[name]) for name in (*PRETRAINED, *EXPERTS, "chat_model")}
    report: dict[str, Any] = {}
    ctx.log("perplexity on the validation streams")
    report["perplexity"] = perplexity_section(models, streams, cfg, info.eot_id)
    ctx.log("domain experts against the base")
    report["experts"] = experts_section(models, report["perplexity"], inputs["tokenizer"], cfg)
    ctx.log("needle in a haystack")
    report["niah"] = niah_section({k: models[k] for k in (*PRETRAINED, "chat_model")}, streams, cfg, info.encode,
                                  info.eot_id)
    ctx.log("held-out task accuracy per post-training round")
    stages = [*_rounds(inputs), "chat_model"]
    report["tasks"] = tasks_section({k: inputs[k] for k in stages}, inputs["tokenizer"], cfg)
    report["sft_data"] = sft_data_section({k: inputs[k] for k in stages if k.startswith("sft_round_")})
    dpo_rounds = [k for k in stages if k.startswith("dpo_round_")]
    ctx.log("the last reward model's preference between consecutive rounds")
    report["rm_round_preference"] = rm_round_preference_section(
        inputs[reward_key(len(dpo_rounds))], {k: inputs[k] for k in dpo_rounds}, inputs["tokenizer"], cfg)
    ctx.log("guard classifiers on their held-out examples")
    report["guards"] = guards_section(inputs["llama_guard"], inputs["prompt_guard"], inputs["quantized_release"], cfg)
    ctx.log("FP8 release against the chat model")
    report["quantization"] = quantization_section(models["chat_model"], inputs["quantized_release"], streams, cfg,
                                                  info.eot_id)
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = _plots(report, out)
    (out / "report.json").write_text(json.dumps(report, indent=1))
    (out / "report.md").write_text(_markdown(report))
    return headline(report)
