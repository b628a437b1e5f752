"""A tiny end-to-end post-training chain on the debug flavor: preference data, reward model,
two SFT/DPO rounds and the averaged chat model, checking every artifact's layout and links."""

import json

import pytest
import torch

from factory.core.stage import StageContext
from factory.model.checkpoint_io import load_state, read_meta
from factory.post.averaging import AverageConfig, run_chat_model
from factory.post.preference import PREFERENCES_FILE, PreferenceConfig, run_preference_data
from factory.post.reward import RewardConfig, run_reward_model
from factory.post.rounds import DPOConfig, SFTConfig, run_dpo_round, run_sft_round
from factory.post.tasks import TASKS

WEIGHTS = dict.fromkeys(TASKS, 1.0)
SAMPLING = {"max_new_tokens": 8, "temperature": 1.0}
TRAIN = {"steps": 2, "batch_size": 4, "lr": 1e-3, "log_every": 1}


@pytest.mark.slow  # ~3 s of its own work, plus the optimizer's one-time import in a fresh process
def test_post_training_chain_end_to_end(post_inputs, tmp_path):
    inputs = dict(post_inputs)

    def stage(name, fn, cfg, **extra):
        # The artifact store gives each artifact its own resumable work_dir.
        ctx = StageContext(log=lambda msg: None, work_dir=tmp_path / "work" / name)
        meta = fn(cfg, inputs, tmp_path / name, ctx, **extra)
        inputs[name] = tmp_path / name
        return meta

    pref = stage("preference_data", run_preference_data,
                 PreferenceConfig(prompts=12, task_weights=WEIGHTS, sampling=SAMPLING,
                                  annotator={"edit_fraction": 1.0}))
    rows = [json.loads(line) for line in (tmp_path / "preference_data" / PREFERENCES_FILE).read_text().splitlines()]
    assert len(rows) == pref["rankings"] == sum(pref["per_strength"].values()) and pref["dropped_ties"] == 0
    assert all(len(set(r["models"])) == 2 for r in rows)  # two different models per prompt

    rm = stage("reward_model", run_reward_model, RewardConfig(train=TRAIN, val_fraction=0.25))
    assert read_meta(tmp_path / "reward_model")["kind"] == "scorer" and rm["val_rankings"] >= 1
    assert 0.0 <= rm["val_pairwise_accuracy"] <= 1.0

    for k in (1, 2):
        sft = stage(f"sft_round_{k}", run_sft_round,
                    SFTConfig(task_weights=WEIGHTS, rs_prompts=4, rs_samples=3, sampling=SAMPLING,
                              synthetic_examples=4, train=TRAIN, eval_prompts=4), round=k)
        assert sft["rejection_sampling"]["prompts"] == 4 and sft["sft_examples"] == sft["qc"]["kept"]
        assert read_meta(tmp_path / f"sft_round_{k}")["extra"]["policy_sampled"] == (
            "annealed_checkpoint" if k == 1 else "dpo_round_1")
        dpo = stage(f"dpo_round_{k}", run_dpo_round,
                    DPOConfig(task_weights=WEIGHTS, onpolicy_prompts=4, sampling=SAMPLING,
                              runs=[{"seed": 0, "beta": 0.1}, {"seed": 1, "beta": 0.5}], train=TRAIN,
                              eval_prompts=4), round=k)
        best = tmp_path / f"dpo_round_{k}" / "runs" / f"run_{dpo['best_run']}"
        assert all(torch.equal(v, load_state(best)[n]) for n, v in load_state(tmp_path / f"dpo_round_{k}").items())
        assert dpo["runs"][0]["dpo_loss_start"] > 0 and dpo["pairs"] >= pref["pairs"]

    chat = run_chat_model(AverageConfig(eval_prompts=4),
                          {"dpo_round_2": inputs["dpo_round_2"], "tokenizer": inputs["tokenizer"]},
                          tmp_path / "chat_model", StageContext(log=lambda msg: None))
    runs = [load_state(tmp_path / "dpo_round_2" / "runs" / f"run_{i}") for i in (0, 1)]
    avg = load_state(tmp_path / "chat_model")
    assert all(torch.allclose(avg[n], (runs[0][n] + runs[1][n]) / 2) for n in avg)
    assert set(chat["dev_runs"]) == {"run_0", "run_1"} and chat["dev"]["n"] == 4
