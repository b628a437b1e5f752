"""The ``scaling_law_fit`` stage: an IsoFLOP grid of small runs and the compute-optimal size fit
(recipe: "Scaling Laws").

For every compute budget C and every model size of the grid, the run length is derived, never
typed: tokens D = C / F(N), where F is the model's own training FLOPs per token (6·N for the
non-embedding weights plus the attention term, ``Transformer.flops_per_token``). Each run trains
with the one trainer on the chosen data mix and reports its validation NLL and its score on a
held-out cloze proxy task. Then (``factory.scaling.forecast``): a parabola in ln N per budget
gives N*(C); power laws N*(C) ∝ C^a and D*(C) ∝ C^b; and the two-stage forecast FLOPs -> proxy
NLL -> proxy accuracy. The grid's runs are single-worker jobs: plain Ray tasks when Ray is up,
else sequential in-process (``factory.train.lm_runs.map_runs``).

Artifact: ``fit.json`` (points, fits, the compute-optimal size at ``target_budget`` and the
recommended flavor/steps for ``base_checkpoint``) and three PNG plots.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from factory.core.stage import StageConfig, StageContext
from factory.core.steps import Steps
from factory.eval.perplexity import val_losses
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.model.tokenizer_files import TokenizerInfo, tokenizer_info
from factory.scaling.forecast import (
    ClozeTask,
    Parabola,
    PowerLaw,
    Sigmoid,
    fit_parabola,
    fit_power_law,
    fit_sigmoid,
    make_cloze,
    plot_forecast,
    plot_isoflops,
    plot_power_laws,
    score_cloze,
)
from factory.train.config import TrainConfig
from factory.train.lm_runs import load_streams, map_runs, mix_data, train_lm
from factory.train.stage_training import log_history
from factory.train.token_shards import read_mix

FIT_FILE = "fit.json"
CURVE_RECORDS = 20  # loss records per grid run: enough to draw its curve, few enough to log


class ScalingConfig(StageConfig):
    """IsoFLOP grid, fits and forecast."""

    budgets: list[float] = Field(
        [1.0e11, 2.0e11, 4.0e11], description="Compute budgets C of the grid (training FLOPs); with 3 flavors a 3 x 3 "
        "grid of ~1 min on 2 cores.")
    flavors: list[str] = Field(
        ["debug", "nano", "micro"], description="Model sizes of the grid (factory.model.flavors).")
    seq_len: int = Field(64, description="Sequence length of every grid run.")
    batch_size: int = Field(8, description="Batch size of every grid run.")
    lr: float = Field(3.0e-3, description="Peak learning rate of every grid run (cosine to min_lr_ratio x lr).")
    min_lr_ratio: float = Field(0.1, description="Cosine floor as a fraction of the peak.")
    warmup_fraction: float = Field(0.1, description="Share of each run's steps spent in linear warmup.")
    min_steps: int = Field(20, description="Grid points whose derived run is shorter are skipped (and counted).")
    eval_windows: int = Field(16, description="Validation windows per domain for each point's NLL.")
    target_budget: float = Field(
        1.0e13, description="Budget the fit extrapolates to: compute-optimal N and D, forecast (default: about "
        "base_checkpoint's compute).")
    recommend_flavors: list[str] = Field(
        default_factory=list, description="Flavors the recommendation picks from (empty: the grid's flavors).")
    recommend_batch_size: int = Field(
        16, description="Batch size the recommended step count assumes (base_checkpoint's).")
    recommend_seq_len: int = Field(128, description="Sequence length the recommended step count assumes.")
    proxy_items: int = Field(64, description="Cloze items of the proxy downstream task.")
    proxy_prompt_len: int = Field(32, description="Prompt tokens of a cloze item.")
    proxy_answer_len: int = Field(4, description="Answer tokens of a cloze item.")
    proxy_choices: int = Field(4, description="Choices per cloze item (the true one + distractors).")
    rope_theta: float = Field(500_000.0, description="RoPE base frequency.")
    seed: int = Field(0, description="Seed of model init, data order and proxy items.")

    @model_validator(mode="after")
    def _check(self) -> ScalingConfig:
        if len(self.budgets) < 2 or len(self.flavors) < 2:
            raise ValueError("an IsoFLOP grid needs at least two budgets and two model sizes")
        return self


def derived_run(budget: float, flops_per_token: float, batch_size: int, seq_len: int) -> tuple[int, int]:
    """(steps, tokens) of a run spending ``budget`` FLOPs: D = C / F(N), rounded to whole steps."""
    steps = int(round(budget / flops_per_token / (batch_size * seq_len)))
    return steps, steps * batch_size * seq_len


def grid_point(item: dict[str, Any], train_streams, val_streams, proxy: ClozeTask, settings: dict[str, Any]) -> dict:
    """One IsoFLOP run (a single-worker grid task): train, then validation NLL and proxy score."""
    args = model_args(item["flavor"], settings["vocab_size"], rope_theta=settings["rope_theta"],
                      max_seq_len=settings["seq_len"])
    cfg = TrainConfig(steps=item["steps"], batch_size=settings["batch_size"], lr=settings["lr"],
                      schedule={"min_lr": settings["lr"] * settings["min_lr_ratio"],
                                "warmup_steps": int(settings["warmup_fraction"] * item["steps"])},
                      seed=settings["seed"],
                      log_every=max(1, item["steps"] // CURVE_RECORDS))
    data = mix_data(train_streams, settings["weights"], settings["seq_len"], settings["eot_id"], settings["seed"])
    result = train_lm(cfg, args, data, log=lambda _: None)
    val = val_losses(result.model, val_streams, settings["seq_len"], settings["eot_id"], settings["eval_windows"])
    nll, acc = score_cloze(result.model, proxy)
    return {**item, "val_loss": val["mean"], "val_loss_by_domain": val, "train_loss": result.final.get("loss"),
            "proxy_nll": nll, "proxy_accuracy": acc, "wall_s": round(result.wall_s, 2), "history": result.history}


def _nearest_flavor(n: float, flavors: list[str], vocab: int) -> tuple[str, int]:
    sizes = {f: Transformer(model_args(f, vocab)).num_params(exclude_embeddings=True) for f in flavors}
    best = min(sizes, key=lambda f: abs(np.log(sizes[f]) - np.log(n)))
    return best, sizes[best]


@dataclass(frozen=True)
class _Fit:
    """The compute-optimal fit of the grid: a parabola per budget, N*(C) and D*(C) and their power laws."""

    budgets: list[float]
    parabolas: dict[float, Parabola]
    c: np.ndarray
    n_opt: np.ndarray
    d_opt: np.ndarray
    n_law: PowerLaw
    d_law: PowerLaw


@dataclass(frozen=True)
class _Forecast:
    """The two-stage forecast: proxy NLL vs FLOPs over each budget's best run, accuracy vs NLL over all runs."""

    best: list[dict[str, Any]]
    nll_law: PowerLaw
    sigmoid: Sigmoid


def _plan_grid(cfg: ScalingConfig, vocab_size: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every (budget, flavor) point with its derived run length: (points to run, points under min_steps)."""
    items, skipped = [], []
    for budget in cfg.budgets:
        for flavor in cfg.flavors:
            model = Transformer(model_args(flavor, vocab_size, max_seq_len=cfg.seq_len))
            fpt = model.flops_per_token(cfg.seq_len)
            steps, tokens = derived_run(budget, fpt, cfg.batch_size, cfg.seq_len)
            point = {"budget": budget, "flavor": flavor, "params": model.num_params(exclude_embeddings=True),
                     "total_params": model.num_params(), "flops_per_token": fpt, "steps": steps, "tokens": tokens,
                     "flops": fpt * tokens}
            (items if steps >= cfg.min_steps else skipped).append(point)
    return items, skipped


def grid_run_name(budget: float, flavor: str) -> str:
    """A grid run's name in metric names: ``grid/2.0e08/nano`` (MLflow refuses a '+' in a name)."""
    return f"grid/{budget:.1e}".replace("e+", "e") + f"/{flavor}"


def _run_grid(cfg: ScalingConfig, items: list[dict[str, Any]], info: TokenizerInfo, weights: dict[str, float],
              train_streams, val_streams, proxy: ClozeTask, ctx: StageContext) -> list[dict[str, Any]]:
    """Train and score every grid point (single-worker grid tasks)."""
    settings = {"vocab_size": info.vocab_size, "rope_theta": cfg.rope_theta, "seq_len": cfg.seq_len,
                "batch_size": cfg.batch_size, "lr": cfg.lr, "min_lr_ratio": cfg.min_lr_ratio,
                "warmup_fraction": cfg.warmup_fraction, "seed": cfg.seed, "weights": weights,
                "eot_id": info.eot_id, "eval_windows": cfg.eval_windows}
    points = map_runs(grid_point, items, train_streams=train_streams, val_streams=val_streams, proxy=proxy,
                      settings=settings)
    for p in points:  # each run's curves join the stage's, as grid/<budget>/<flavor>/<metric>
        log_history(grid_run_name(p["budget"], p["flavor"]), p.pop("history"), ctx)
        ctx.log(f"C={p['budget']:.2e} {p['flavor']:>6} N={p['params']:,} steps={p['steps']} "
                f"val {p['val_loss']:.4f} proxy nll {p['proxy_nll']:.3f} acc {p['proxy_accuracy']:.2f}")
    return points


def _fit_compute_optimal(points: list[dict[str, Any]]) -> _Fit:
    """A parabola in ln N per budget gives N*(C); D*(C) follows from it; power laws through both."""
    budgets = sorted({p["budget"] for p in points})
    parabolas = {}
    for b in budgets:
        pts = [p for p in points if p["budget"] == b]
        parabolas[b] = fit_parabola(np.array([p["params"] for p in pts]), np.array([p["val_loss"] for p in pts]))
    if len(budgets) < 2:
        raise ValueError(f"only {len(budgets)} budget(s) left after skipping short runs; lower min_steps")
    c = np.array(budgets)
    n_opt = np.array([parabolas[b].n_opt for b in budgets])
    # D*(C): the tokens the optimal model reads, with its FLOPs per token ≈ 6 N* (+ attention, as measured).
    fpt_per_param = np.median([p["flops_per_token"] / p["params"] for p in points])
    d_opt = c / (fpt_per_param * n_opt)
    return _Fit(budgets, parabolas, c, n_opt, d_opt, fit_power_law(c, n_opt), fit_power_law(c, d_opt))


def _forecast(points: list[dict[str, Any]], budgets: list[float], proxy: ClozeTask) -> _Forecast:
    """Two-stage forecast: the best run of each budget gives proxy NLL vs FLOPs; all runs give accuracy vs NLL."""
    best = [min((p for p in points if p["budget"] == b), key=lambda p: p["val_loss"]) for b in budgets]
    nll_law = fit_power_law(np.array([p["flops"] for p in best]), np.array([p["proxy_nll"] for p in best]))
    sigmoid = fit_sigmoid(np.array([p["proxy_nll"] for p in points]), np.array([p["proxy_accuracy"] for p in points]),
                          floor=proxy.chance)
    return _Forecast(best, nll_law, sigmoid)


def _recommend(cfg: ScalingConfig, target_n: float, vocab_size: int) -> dict[str, Any]:
    """The flavor nearest the compute-optimal size and the steps it takes to spend the target budget."""
    flavor, flavor_params = _nearest_flavor(target_n, cfg.recommend_flavors or cfg.flavors, vocab_size)
    rec_model = Transformer(model_args(flavor, vocab_size))
    rec_tokens = cfg.target_budget / rec_model.flops_per_token(cfg.recommend_seq_len)
    rec_steps = max(1, int(round(rec_tokens / (cfg.recommend_batch_size * cfg.recommend_seq_len))))
    return {"flavor": flavor, "params": flavor_params, "tokens": rec_tokens, "steps": rec_steps,
            "batch_size": cfg.recommend_batch_size, "seq_len": cfg.recommend_seq_len}


def _law(law: PowerLaw) -> dict[str, float]:
    return {"coef": law.coef, "exponent": law.exponent, "r2": law.r2}


def _fit_json(cfg: ScalingConfig, points: list[dict[str, Any]], skipped: list[dict[str, Any]], fit: _Fit,
              fc: _Forecast, proxy: ClozeTask, recommendation: dict[str, Any]) -> dict[str, Any]:
    target_nll = float(fc.nll_law(cfg.target_budget))
    sigmoid = fc.sigmoid
    return {
        "points": points,
        "skipped": skipped,
        "parabolas": {f"{b:g}": {"coeffs": par.coeffs, "n_opt": par.n_opt, "loss_opt": par.loss_opt,
                                 "fitted": par.fitted} for b, par in fit.parabolas.items()},
        "n_opt_law": _law(fit.n_law),
        "d_opt_law": _law(fit.d_law),
        "forecast": {
            "nll_law": _law(fc.nll_law),
            "sigmoid": {"floor": sigmoid.floor, "k": sigmoid.k, "mid": sigmoid.mid, "r2": sigmoid.r2},
            "target_budget": cfg.target_budget,
            "proxy_nll": target_nll,
            "proxy_accuracy": float(sigmoid(target_nll)),
            "proxy_chance": proxy.chance,
        },
        "compute_optimal": {"budget": cfg.target_budget, "params": float(fit.n_law(cfg.target_budget)),
                            "tokens": float(fit.d_law(cfg.target_budget))},
        "recommendation": recommendation,
    }


def run_scaling_law_fit(cfg: ScalingConfig, inputs: dict[str, Path], out: Path, ctx: StageContext) -> dict[str, Any]:
    steps = Steps("scaling_law_fit", ctx.log)
    info = tokenizer_info(inputs["tokenizer"])
    with steps.step("data") as s:
        weights = read_mix(inputs["data_mix"])["weights"]
        train_streams = load_streams(inputs["data_mix"], list(weights), "train")
        val_streams = load_streams(inputs["data_mix"], list(weights), "validation")
        proxy = make_cloze(np.concatenate(list(val_streams.values())), cfg.proxy_items, cfg.proxy_prompt_len,
                           cfg.proxy_answer_len, cfg.proxy_choices, cfg.seed)
        s.count(streams=len(train_streams), proxy_items=len(proxy.prompts))
    with steps.step("grid") as s:
        items, skipped = _plan_grid(cfg, info.vocab_size)
        ctx.log(f"IsoFLOP grid: {len(items)} runs ({len(skipped)} skipped under {cfg.min_steps} steps)")
        points = _run_grid(cfg, items, info, weights, train_streams, val_streams, proxy, ctx)
        s.count(runs=len(points), skipped=len(skipped))
    with steps.step("fit") as s:
        fit = _fit_compute_optimal(points)
        s.count(budgets=len(fit.budgets), parabolas_fitted=sum(par.fitted for par in fit.parabolas.values()))
    with steps.step("forecast") as s:
        fc = _forecast(points, fit.budgets, proxy)
        recommendation = _recommend(cfg, float(fit.n_law(cfg.target_budget)), info.vocab_size)
        s.count(best_runs=len(fc.best))
    with steps.step("plots"):
        plot_isoflops(points, fit.parabolas, out / "isoflops.png")
        plot_power_laws(fit.c, fit.n_opt, fit.d_opt, fit.n_law, fit.d_law, cfg.target_budget, out / "power_laws.png")
        plot_forecast(fc.best, points, fc.nll_law, fc.sigmoid, cfg.target_budget, out / "forecast.png")
    fit_json = _fit_json(cfg, points, skipped, fit, fc, proxy, recommendation)
    (out / FIT_FILE).write_text(json.dumps(fit_json, indent=1))
    target_nll = fit_json["forecast"]["proxy_nll"]
    return {
        "grid_runs": len(points),
        "skipped_runs": len(skipped),
        "n_opt_exponent": round(fit.n_law.exponent, 4),
        "n_opt_r2": round(fit.n_law.r2, 4),
        "d_opt_exponent": round(fit.d_law.exponent, 4),
        "d_opt_r2": round(fit.d_law.r2, 4),
        "parabolas_fitted": sum(par.fitted for par in fit.parabolas.values()),
        "compute_optimal_params": round(fit_json["compute_optimal"]["params"]),
        "compute_optimal_tokens": round(fit_json["compute_optimal"]["tokens"]),
        "recommended_flavor": recommendation["flavor"],
        "recommended_steps": recommendation["steps"],
        "forecast_proxy_nll": round(target_nll, 4),
        "forecast_proxy_accuracy": round(float(fc.sigmoid(target_nll)), 4),
        "nll_law_r2": round(fc.nll_law.r2, 4),
        "sigmoid_r2": round(fc.sigmoid.r2, 4),
        "steps": steps.summary(),
    }
