"""A tiny end-to-end post-training chain on the debug flavor: two rounds of fresh preferences, a
reward model on all preferences so far, SFT and DPO, then the averaged chat model, checking every
artifact's layout and links."""

import json

import pytest
import torch

from factory.core.stage import StageContext
from factory.model.checkpoint_io import load_state, read_meta
from factory.post.averaging import AverageConfig, run_chat_model
from factory.post.preference import PREFERENCES_FILE, PreferenceConfig, run_preference_data
from factory.post.reward import RewardConfig, run_reward_model
from factory.post.round_assets import preference_key, reward_key
from factory.post.rounds import DPOConfig, SFTConfig, run_dpo_round, run_sft_round
from factory.post.sft_data import pretraining_examples
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

    pairs = {}
    for k in (1, 2):
        pref = stage(preference_key(k), run_preference_data,
                     PreferenceConfig(prompts=12, task_weights=WEIGHTS, sampling=SAMPLING,
                                      annotator={"edit_fraction": 1.0}), round=k)
        rows = [json.loads(line) for line in (tmp_path / preference_key(k) / PREFERENCES_FILE).read_text().splitlines()]
        assert len(rows) == pref["rankings"] == sum(pref["per_strength"].values()) and pref["dropped_ties"] == 0
        assert all(len(set(r["models"])) == 2 for r in rows)  # two different models per prompt
        # The round's policy answers every prompt; code and multilingual prompts go to their experts.
        policy = "annealed_checkpoint" if k == 1 else "dpo_round_1"
        assert all(policy in r["models"] and (r["prompt"]["task"] == "code") == ("code_expert" in r["models"])
                   for r in rows)
        assert all("multilingual_expert" in r["models"] for r in rows if r["prompt"]["task"] == "multilingual")
        if k == 2:
            assert set(pref["models"]) == {"dpo_round_1", "sft_round_1", "code_expert", "multilingual_expert"}
        pairs[k] = pref["pairs"]

        rm = stage(reward_key(k), run_reward_model, RewardConfig(train=TRAIN, val_fraction=0.25), round=k)
        assert read_meta(tmp_path / reward_key(k))["kind"] == "scorer" and rm["val_rankings"] >= 1
        # Round k's reward model learns from every round's preferences so far.
        assert rm["rankings_by_asset"] == {preference_key(j): len(read_lines(tmp_path / preference_key(j)))
                                           for j in range(1, k + 1)}
        assert rm["train_rankings"] + rm["val_rankings"] == sum(rm["rankings_by_asset"].values())
        assert [r["seed"] for r in rm["runs"]] == [0, 1]  # averaged runs (RewardConfig.seeds)
        assert read_meta(tmp_path / reward_key(k))["extra"]["averaged_seeds"] == [0, 1]

        sft = stage(f"sft_round_{k}", run_sft_round,
                    SFTConfig(task_weights=WEIGHTS, rs_prompts=4, rs_samples=3, sampling=SAMPLING,
                              synthetic_examples=4, train={**TRAIN, "batch_size": 12}, eval_prompts=4,
                              pretrain_fraction=0.5,
                              pretrain_seq_len=32, system_prompt_share=1.0, seeds=[0] if k == 1 else [0, 1]),
                    round=k)
        rs = sft["rejection_sampling"]
        assert rs["steered_by_system_prompts"] and sft["synthetic_with_system_prompt"] == 4
        # Round 2 trains one run per seed and averages them; each run's dev accuracy is beside the average's.
        assert read_meta(tmp_path / f"sft_round_{k}")["extra"]["averaged_seeds"] == [r["seed"] for r in sft["runs"]]
        assert all("dev" in r for r in sft["runs"]) == (k == 2)
        assert rs["per_family"]["all"]["prompts"] == 4 and rs["reward_model"] == reward_key(k)
        dialogs = sft["examples_by_source"]["rejection_sampling"] + sft["examples_by_source"]["synthetic"]
        assert dialogs == sft["qc"]["kept"]
        # pretrain_fraction 0.5 of the loss tokens: as many text tokens as answer tokens, in whole 32-token
        # windows, fresh ones for each pass over the dialogs (2 steps x 12 examples: 2+ passes over ~8-12)
        tokens, passes = sft["loss_tokens"], sft["dialog_passes"]
        assert passes >= 2 and tokens["answers"] - 32 * passes < tokens["pretraining_text"] <= tokens["answers"]
        assert sft["sft_examples"] == dialogs * passes + tokens["pretraining_text"] // 32 == (
            dialogs * passes + sft["examples_by_source"]["pretraining_text"])
        assert read_meta(tmp_path / f"sft_round_{k}")["extra"]["policy_sampled"] == policy
        dpo = stage(f"dpo_round_{k}", run_dpo_round,
                    DPOConfig(task_weights=WEIGHTS, onpolicy_prompts=4, sampling=SAMPLING,
                              runs=[{"seed": 0, "beta": 0.1}, {"seed": 1, "beta": 0.5}], train=TRAIN,
                              eval_prompts=4), round=k)
        best = tmp_path / f"dpo_round_{k}" / "runs" / f"run_{dpo['best_run']}"
        assert all(torch.equal(v, load_state(best)[n]) for n, v in load_state(tmp_path / f"dpo_round_{k}").items())
        assert dpo["runs"][0]["dpo_loss_start"] > 0 and dpo["pairs"] >= pairs[k]
        assert dpo["round_preferences"] == {"asset": preference_key(k), "rankings": len(rows)}

    chat = run_chat_model(AverageConfig(eval_prompts=4),
                          {"dpo_round_2": inputs["dpo_round_2"], "tokenizer": inputs["tokenizer"]},
                          tmp_path / "chat_model", StageContext(log=lambda msg: None))
    runs = [load_state(tmp_path / "dpo_round_2" / "runs" / f"run_{i}") for i in (0, 1)]
    avg = load_state(tmp_path / "chat_model")
    assert all(torch.allclose(avg[n], (runs[0][n] + runs[1][n]) / 2) for n in avg)
    assert set(chat["dev_runs"]) == {"run_0", "run_1"} and chat["dev"]["n"] == len(TASKS)  # one a family


def read_lines(folder):
    return (folder / PREFERENCES_FILE).read_text().splitlines()


def test_pretraining_examples_are_mix_windows_with_loss_on_every_token(post_inputs):
    ex = pretraining_examples(post_inputs["data_mix"], 5, 16, eot_id=1, seed=3)
    assert len(ex) == 5 and all(len(e["input_ids"]) == 16 and e["labels"] == e["input_ids"] for e in ex)
    assert ex == pretraining_examples(post_inputs["data_mix"], 5, 16, eot_id=1, seed=3)
    assert pretraining_examples(post_inputs["data_mix"], 0, 16, eot_id=1, seed=3) == []
    with pytest.raises(ValueError, match="no train stream longer"):
        pretraining_examples(post_inputs["data_mix"], 1, 10**7, eot_id=1, seed=3)
