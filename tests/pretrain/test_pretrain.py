"""The pre-training chain on the debug flavor: data_mix -> scaling_law_fit -> base -> long context ->
anneal -> experts, each a tiny run of the one trainer."""

import json
import sys
from pathlib import Path

import pytest

from factory.core.stage import StageContext
from factory.data.mix import DataMixConfig, run_data_mix
from factory.model.checkpoint_io import load_args, load_model, read_meta
from factory.pretrain.anneal import AnnealConfig, run_annealed_checkpoint
from factory.pretrain.base import PretrainConfig, run_base_checkpoint
from factory.pretrain.continued import HISTORY_FILE
from factory.pretrain.experts import ExpertConfig, run_expert_checkpoint
from factory.pretrain.long_context import LongContextConfig, run_long_context_checkpoint
from factory.scaling.isoflop import CURVE_RECORDS, FIT_FILE, ScalingConfig, grid_run_name, run_scaling_law_fit
from factory.train.config import TrainConfig
from factory.train.lm_runs import shifted_mix

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from synthetic_corpus import write_inputs


def T(**kw) -> TrainConfig:
    return TrainConfig(**{"steps": 4, "batch_size": 4, "lr": 3e-3, "log_every": 2, **kw})


def _stage(root: Path, name: str, fn, cfg, inputs, curves: dict | None = None):
    out = root / name
    out.mkdir()
    # One context per stage run, as the artifact store makes them (its checkpoint folders are its own).
    ctx = StageContext(log=lambda _: None)
    meta = fn(cfg, inputs, out, ctx)
    if curves is not None:  # the names of the curves the stage filed: {metric: [steps]}
        for step, metrics in ctx.history:
            for metric in metrics:
                curves.setdefault(name, {}).setdefault(metric, []).append(step)
    return out, meta


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    inputs = write_inputs(root, vocab_size=600)
    meta = {"curves": {}}
    inputs["data_mix"], meta["data_mix"] = _stage(root, "data_mix", run_data_mix, DataMixConfig(
        topic_max_share=0.4, topic_min_keep=0.2, val_fraction=0.15, shard_tokens=4000, high_quality_fraction=0.2,
        experiment_flavors=["debug"], seq_len=32, train=T(steps=2), eval_windows=2), inputs)
    inputs["scaling_law_fit"], meta["scaling_law_fit"] = _stage(root, "fit", run_scaling_law_fit, ScalingConfig(
        budgets=[1e8, 2e8], flavors=["debug", "nano"], seq_len=32, batch_size=2, lr=3e-3, min_steps=1,
        eval_windows=2, target_budget=1e10, recommend_flavors=["debug"], recommend_batch_size=4,
        recommend_seq_len=32, proxy_items=4, proxy_prompt_len=8, proxy_answer_len=2, proxy_choices=4), inputs,
        meta["curves"])
    base_cfg = PretrainConfig(flavor="nano", size_from="scaling_law_fit", seq_len=32, eval_windows=4,
                                train=T(steps=16, lr=1e-2,
                                        schedule={"warmup_steps": 2, "batch_ramp": [(4, 2)], "min_lr": 1e-3}))
    inputs["base_checkpoint"], meta["base"] = _stage(root, "base", run_base_checkpoint, base_cfg, inputs)
    long_cfg = LongContextConfig(
        lengths=[64, 96], train=T(steps=4, schedule={"kind": "constant"}), check_every=2, recovery_tolerance=0.5,
        niah_threshold=0.5, niah_depths=[0.0, 1.0], niah_trials=2, niah_distractors=3, niah_rate=0.2, eval_windows=2)
    inputs["long_context_checkpoint"], meta["long"] = _stage(root, "long", run_long_context_checkpoint, long_cfg,
                                                             inputs, meta["curves"])
    anneal_cfg = AnnealConfig(train=T(steps=3, schedule={"kind": "linear_to_zero"}), upsample={"math": 2.0},
                                high_quality_weight=0.2, eval_windows=2, value_dataset="math", value_steps=2)
    _, meta["anneal"] = _stage(root, "anneal", run_annealed_checkpoint, anneal_cfg, inputs, meta["curves"])
    _, meta["code"] = _stage(root, "code", run_expert_checkpoint,
                             ExpertConfig(domain="code", domain_weight=0.85, train=T(steps=3), eval_windows=2), inputs)
    return root, inputs, meta, base_cfg


@pytest.mark.slow
def test_fit_recommends_the_base_flavor_and_writes_plots(chain):
    root, _, meta, _ = chain
    fit = json.loads((root / "fit" / FIT_FILE).read_text())
    assert len(fit["points"]) == 4 and {p["steps"] for p in fit["points"]} != {0}
    assert meta["base"]["flavor"] == fit["recommendation"]["flavor"] == "debug"
    assert all((root / "fit" / f).stat().st_size > 0 for f in ("isoflops.png", "power_laws.png", "forecast.png"))
    # Every grid run's loss curve is filed as the stage's, at its own steps (at most CURVE_RECORDS of them).
    losses = {k: v for k, v in meta["curves"]["fit"].items() if k.endswith("/loss")}
    assert "grid/2.0e08/debug/loss" in losses  # MLflow refuses the '+' of 2.0e+08 in a metric name
    every = {p["steps"]: max(1, p["steps"] // CURVE_RECORDS) for p in fit["points"]}
    assert losses == {f"{grid_run_name(p['budget'], p['flavor'])}/loss":
                      [s for s in range(1, p["steps"] + 1) if s % every[p["steps"]] == 0 or s == p["steps"]]
                      for p in fit["points"]}


@pytest.mark.slow
def test_cosine_base_run_beats_its_initialization(chain):
    root, _, meta, base_cfg = chain
    base = meta["base"]
    assert base["val_loss"]["mean"] < base["init_val_loss"] - 0.3
    assert base["tokens"] == (4 * 2 + 12 * 4) * 32  # the batch ramp: 4 steps of 2, then 12 of 4
    assert base["restarts"] == base["lost_steps"] == 0 and 0 < base["goodput"] <= 1
    history = json.loads((root / "base" / HISTORY_FILE).read_text())
    assert history[-1]["lr"] < history[0]["lr"] and history[0]["batch_size"] == 2
    args = load_args(root / "base")
    assert args.rope_theta == 500_000.0 and args.n_kv_heads < args.n_heads and args.max_seq_len == 32


@pytest.mark.slow
def test_base_run_resumes_from_its_work_dir(chain, tmp_path):
    _, inputs, _, base_cfg = chain
    cfg = base_cfg.model_copy(update={"train": T(steps=3), "eval_windows": 1})
    ctx = StageContext(work_dir=tmp_path / "work", log=lambda _: None)
    first = run_base_checkpoint(cfg, inputs, tmp_path / "a", ctx)
    again = run_base_checkpoint(cfg, inputs, tmp_path / "b", ctx)
    assert first["resumed_from_step"] is None and again["resumed_from_step"] == 3
    assert again["val_loss"] == first["val_loss"]


@pytest.mark.slow
def test_long_context_raises_the_length_and_records_gates(chain):
    root, _, meta, _ = chain
    long = meta["long"]
    assert long["base_seq_len"] == 32 and long["seq_len"] == 96
    assert [r["length"] for r in long["increments"]] == [64, 96]
    assert all(2 <= r["steps"] <= 4 for r in long["increments"])
    gates = json.loads((root / "long" / "gates.json").read_text())
    for inc in gates["increments"]:
        for check in inc["checks"]:
            assert {"short_recovered", "niah_solved", "passed", "niah"} <= set(check)
    assert read_meta(root / "long")["args"]["max_seq_len"] == 96
    assert set(long["niah_final_per_length"]) >= {"64", "96"}
    # Each increment's training curve apart (its steps count from 1), beside its gate curve.
    curves = meta["curves"]["long"]
    assert "loss" not in curves
    assert [curves[f"len{r['length']}/loss"] for r in long["increments"]] == [
        list(range(2, r["steps"] + 1, 2)) for r in long["increments"]]  # log_every 2


@pytest.mark.slow
def test_anneal_ends_at_zero_lr_and_values_a_dataset(chain):
    root, _, meta, _ = chain
    anneal = meta["anneal"]
    assert anneal["seq_len"] == 96 and anneal["mix"]["high_quality"] == pytest.approx(0.2)
    history = json.loads((root / "anneal" / HISTORY_FILE).read_text())
    assert history[-1]["lr"] == pytest.approx(3e-3 / 3)  # the last of 3 steps: peak * (1 - 2/3), then 0
    valuation = anneal["dataset_valuation"]
    assert valuation["runs"]["with_dataset"]["mix"]["math"] > valuation["runs"]["default_mix"]["mix"]["math"]
    assert set(valuation["val_loss_delta"]) >= {"math", "mean"}
    # The stage's run and both valuation runs (2 steps, log_every 2), each with its own curve.
    curves = meta["curves"]["anneal"]
    assert (curves["loss"], curves["valuation/default_mix/loss"], curves["valuation/with_dataset/loss"]) == (
        [2, 3], [2], [2])


@pytest.mark.slow
def test_expert_shifts_the_mix_to_its_domain(chain):
    root, _, meta, _ = chain
    code = meta["code"]
    assert code["mix"]["code"] == pytest.approx(0.85) and sum(code["mix"].values()) == pytest.approx(1.0)
    assert code["domain_val_loss_delta"] < 0
    assert load_model(root / "code").args.max_seq_len == 32


def test_configs_reject_bad_schedules_and_lengths():
    with pytest.raises(ValueError, match="linear_to_zero"):
        AnnealConfig(train=T(), high_quality_weight=0.0, eval_windows=1)
    with pytest.raises(ValueError, match="ascending"):
        LongContextConfig(lengths=[128, 64], train=T(), check_every=1, recovery_tolerance=0.1, niah_threshold=0.5,
                            niah_depths=[0.5], niah_trials=1, niah_distractors=1, niah_rate=0.1, eval_windows=1)
    assert shifted_mix({"general": 0.5, "code": 0.25, "math": 0.25}, "code", 0.85) == pytest.approx(
        {"general": 0.1, "math": 0.05, "code": 0.85})
