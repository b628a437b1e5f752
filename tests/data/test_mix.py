"""data_mix: topic cap, domain routing, mix choice and extrapolation, and a tiny stage run."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from factory.core.stage import StageContext
from factory.data import mix as M
from factory.model.tokenizer_files import tokenizer_info
from factory.train.config import TrainConfig
from factory.train.token_shards import load_stream, read_mix, stream_names

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from synthetic_corpus import write_inputs


def test_topic_cap_is_the_largest_count_within_the_share():
    caps, share = M.topic_caps({"arts": 80, "science": 10, "travel": 10}, 0.5)
    assert caps == {"arts": 20, "science": 10, "travel": 10} and share == 0.5
    assert caps["arts"] / sum(caps.values()) <= 0.5
    # Unreachable share (2 topics, 30% each) is raised to 1/2.
    caps, share = M.topic_caps({"a": 50, "b": 5}, 0.3)
    assert share == 0.5 and caps == {"a": 5, "b": 5}


def test_downsampling_keeps_every_topic_under_the_cap():
    df = pd.DataFrame({"topic": ["arts"] * 70 + ["science"] * 20 + [None] * 10, "text": ["x"] * 100})
    out, report = M.downsample_topics(df, 0.4, seed=0)
    shares = out["topic"].fillna("unknown").value_counts(normalize=True)
    assert shares.max() <= 0.4 + 1e-9
    assert report["dropped_docs"] == 100 - len(out) and report["after"]["science"] == 20
    # min_keep thins a dominant topic instead of emptying the corpus.
    kept, report = M.downsample_topics(df, 0.4, seed=0, min_keep=0.5)
    assert report["after"]["arts"] == 35 and (kept["topic"] == "arts").sum() == 35


def test_domains_route_non_english_to_multilingual():
    df = pd.DataFrame({"language": ["en", "de", "en", "en", None],
                       "domain": ["code", "code", "math", "odd", "general"]})
    assert M.assign_domains(df).tolist() == ["code", "multilingual", "math", "general", "general"]


def test_mix_choice_picks_the_lowest_predicted_or_observed_loss():
    assert M.choose_mix({"a": {"score": 3.0}, "b": {"score": 2.5}, "c": {"score": 2.9}}) == "b"
    # A mix that is worse at small size but scales better wins on the extrapolated loss.
    results = {"a": {"score": 3.0, "predicted": 2.0}, "b": {"score": 2.5, "predicted": 2.2}}
    assert M.choose_mix(results) == "a"
    assert M.extrapolate([1e4, 1e5], [4.0, 3.0], 1e6) == pytest.approx(2.0)


def test_paper_mix_adapts_to_the_domains_present():
    assert M.adapt_mix(M.LLAMA3_MIX, {"general", "code"}) == pytest.approx({"general": 0.5 / 0.67, "code": 0.17 / 0.67})
    assert M.adapt_mix({"math": 1.0}, {"general"}) is None


@pytest.mark.slow
def test_run_data_mix_writes_shards_and_picks_the_best_candidate(tmp_path):
    inputs = write_inputs(tmp_path / "in", n_docs=120, vocab_size=500)
    cfg = M.DataMixConfig(
        topic_max_share=0.4, topic_min_keep=0.2, val_fraction=0.15, shard_tokens=500, high_quality_fraction=0.2,
        candidates={"llama3": dict(M.LLAMA3_MIX), "code_only": {"code": 1.0}},
        experiment_flavors=["debug"], seq_len=16, train=TrainConfig(steps=2, batch_size=2, lr=1e-3), eval_windows=2)
    out = tmp_path / "out"
    out.mkdir()
    ctx = StageContext(log=lambda _: None)
    meta = M.run_data_mix(cfg, inputs, out, ctx)
    mix = read_mix(out)
    scores = {n: r["score"] for n, r in mix["candidates"].items()}
    assert set(scores) == {"llama3", "code_only", "natural"}
    assert mix["chosen"] == min(scores, key=scores.get) == meta["chosen_mix"]
    assert sum(mix["weights"].values()) == pytest.approx(1.0)
    assert set(stream_names(out)) == {"general", "code", "math", "multilingual", "high_quality"}
    eot = tokenizer_info(inputs["tokenizer"]).eot_id
    code = load_stream(out, "code", "train")
    assert code.dtype == np.uint32 and code[-1] == eot
    assert len(list((out / "tokens" / "code").glob("train-*.npy"))) == -(-len(code) // 500)
    assert json.loads((out / "topics.json").read_text())["dropped_docs"] == meta["topic_dropped_docs"] > 0
    assert list(meta["steps"]) == ["downsample", "tokenize", "experiments", "select"]
    assert meta["steps"]["experiments"]["counts"]["runs"] == 3 and meta["steps"]["experiments"]["seconds"] > 0
    # One row per experiment, and each experiment's curves filed as the stage's (its one record: step 2 of 2).
    rows = {(r["candidate"], r["flavor"]): r for r in meta["experiments"]}
    assert set(rows) == {("llama3", "debug"), ("code_only", "debug"), ("natural", "debug")}
    assert all(r["val_loss_mean"] == round(mix["candidates"][c]["score"], 5) for (c, _), r in rows.items())
    assert [step for step, m in ctx.history if "mix/code_only/debug/loss" in m] == [2]
