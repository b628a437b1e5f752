"""Training examples: SFT labels only on target tokens, DPO labels without formatting tokens."""

from factory.model.chat_format import load_chat_format
from factory.post.encode import preference_example, prompt_ids, ranking_example, sft_example
from factory.post.sft_data import synthetic_records
from factory.post.tasks import FAMILIES, TASKS, sample_prompts
from factory.train.losses import IGNORE


def test_sft_labels_mask_everything_but_the_assistant_answer_and_eot(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = sft_example(fmt, "What is 47 + 38?", "85", 96)
    prompt = prompt_ids(fmt, "What is 47 + 38?")
    assert ex["input_ids"][: len(prompt)] == prompt
    assert all(label == IGNORE for label in ex["labels"][: len(prompt)])
    targets = [t for t in ex["labels"] if t != IGNORE]
    assert targets == fmt.encode("85") + [fmt.eot_id]
    assert sft_example(fmt, "What is 47 + 38?", "85 " * 100, 96) is None  # longer than the context


def test_dpo_masks_formatting_tokens_in_chosen_and_rejected(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = preference_example(fmt, "What is 47 + 38?", "85", "12", 96)
    for side, text in (("chosen", "85"), ("rejected", "12")):
        labels = [t for t in ex[f"{side}_labels"] if t != IGNORE]
        assert labels == fmt.encode(text)  # no eot, no header tokens
        assert not any(fmt.is_special(t) for t in labels)
        assert fmt.eot_id in ex[f"{side}_ids"]


def test_ranking_example_lengths_end_at_the_eot(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = ranking_example(fmt, "Hi", "85", "1 2 3", 96)
    assert ex["chosen_ids"][ex["chosen_len"] - 1] == fmt.eot_id
    assert ex["rejected_ids"][ex["rejected_len"] - 1] == fmt.eot_id


def test_a_system_prompt_opens_the_dialog_and_carries_no_loss(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    system = FAMILIES["arithmetic"].system_prompt
    ex = sft_example(fmt, "What is 47 + 38?", "85", 96, system=system)
    prompt = prompt_ids(fmt, "What is 47 + 38?", system)
    assert prompt[1:][: len(fmt.encode_header("system"))] == fmt.encode_header("system")
    assert len(prompt) > len(prompt_ids(fmt, "What is 47 + 38?")) + len(fmt.encode(system))
    assert ex["input_ids"][: len(prompt)] == prompt
    assert [t for t in ex["labels"] if t != IGNORE] == fmt.encode("85") + [fmt.eot_id]


def test_synthetic_records_carry_their_family_system_prompt_at_the_configured_share():
    prompts = sample_prompts(400, 3, "train", dict.fromkeys(TASKS, 1.0))
    none, every, some = (synthetic_records(prompts, share, seed=1) for share in (0.0, 1.0, 0.25))
    assert not any("system" in r for r in none)
    assert all(r["system"] == FAMILIES[r["task"]].system_prompt for r in every)
    assert 60 <= sum("system" in r for r in some) <= 140  # 100 expected
    assert [r["response"] for r in some] == [p.reference for p in prompts]
