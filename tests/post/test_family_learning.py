"""One round on a family alone raises a tiny model's held-out accuracy on it: each family's data
(generator, references, the round's SFT) teaches what its checker measures, by a margin over what an
untrained model scores. A 'nano' decoder from random weights, one ``run_sft_round`` with
that family's weight only; the steps are what each family needs to clear the margin (arithmetic is
the slowest to learn, as in the demo)."""

import json

import pytest
import torch

from factory.core.stage import StageContext
from factory.data import tokenizer as T
from factory.model.chat_format import load_chat_format
from factory.model.checkpoint_io import build_model, load_model, save_model
from factory.model.flavors import model_args
from factory.post.rounds import SFTConfig, run_sft_round
from factory.post.task_accuracy import evaluate, heldout_prompts
from factory.post.tasks import TASKS, sample_prompts
from factory.train.token_shards import MIX_FILE, encode_documents, save_stream

STEPS = {"arithmetic": 1200, "uppercase": 400, "word_count": 400, "code": 300, "math": 600, "multilingual": 800,
         "steer": 1400}
PER_FAMILY = 40  # dev prompts a family


@pytest.fixture(scope="module")
def learner_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("learner")
    corpus = [f"{p.prompt}\n{p.reference}" for p in sample_prompts(400, 0, "train", dict.fromkeys(TASKS, 1.0))]
    tok = T.train_bpe(corpus, 600, num_special_tokens=16)
    T.save_tokenizer(tok, root / "tokenizer")
    fmt = load_chat_format(root / "tokenizer")
    torch.manual_seed(0)
    save_model(build_model(model_args("nano", tok.get_vocab_size(), max_seq_len=256)), root / "annealed_checkpoint")
    save_model(build_model(model_args("debug", tok.get_vocab_size(), max_seq_len=256), "scorer", 1),
               root / "reward_model")
    save_stream(encode_documents(tok, corpus, fmt.eos_id), root / "data_mix", "general", "train", shard_tokens=4096)
    (root / "data_mix" / MIX_FILE).write_text(json.dumps({"weights": {"general": 1.0}}))
    return {name: root / name for name in ("tokenizer", "annealed_checkpoint", "reward_model", "data_mix")}


@pytest.mark.parametrize("task", TASKS)
def test_one_round_on_a_family_alone_raises_its_held_out_accuracy(task, learner_inputs, tmp_path):
    fmt = load_chat_format(learner_inputs["tokenizer"])
    dev = [p for p in heldout_prompts(PER_FAMILY * len(TASKS), 0, "dev") if p.task == task]
    before = evaluate(load_model(learner_inputs["annealed_checkpoint"]), fmt, dev)[task]["accuracy"]
    cfg = SFTConfig(task_weights={task: 1.0}, rs_prompts=8, rs_samples=2, synthetic_examples=3 * STEPS[task],
                    system_prompt_share=0.0, pretrain_fraction=0.0, eval_prompts=len(TASKS),
                    train={"steps": STEPS[task], "batch_size": 16, "lr": 3e-3, "log_every": 10_000,
                           "schedule": {"warmup_steps": 20, "min_lr": 1e-4}})
    run_sft_round(cfg, learner_inputs, tmp_path / "sft", StageContext(log=lambda m: None, work_dir=tmp_path / "w"),
                  round=1)
    after = evaluate(load_model(tmp_path / "sft"), fmt, dev)[task]["accuracy"]
    # An untrained model can pass a checker by chance (any N words pass word_count): the round adds 10 points.
    assert after >= before + 0.1, (before, after)
