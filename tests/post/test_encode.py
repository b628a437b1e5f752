"""Training examples: SFT labels only on target tokens, DPO labels without formatting tokens."""

from factory.model.chat_format import load_chat_format
from factory.post.encode import preference_example, prompt_ids, ranking_example, sft_example
from factory.post.sft_data import synthetic_records
from factory.post.tasks import FAMILIES, TASKS, sample_prompts
from factory.train.losses import IGNORE

Q = [{"role": "user", "content": "What is 47 + 38?"}]


def test_sft_labels_mask_everything_but_the_assistant_answer_and_eot(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = sft_example(fmt, Q, "85", 96)
    prompt = prompt_ids(fmt, Q)
    assert ex["input_ids"][: len(prompt)] == prompt
    assert all(label == IGNORE for label in ex["labels"][: len(prompt)])
    targets = [t for t in ex["labels"] if t != IGNORE]
    assert targets == fmt.encode("85") + [fmt.eot_id]
    assert ex["input_ids"] == fmt.encode_dialog([*Q, {"role": "assistant", "content": "85"}])[0]
    assert sft_example(fmt, Q, "85 " * 100, 96) is None  # longer than the context


def test_dpo_masks_formatting_tokens_in_chosen_and_rejected(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = preference_example(fmt, Q, "85", "12", 96)
    for side, text in (("chosen", "85"), ("rejected", "12")):
        labels = [t for t in ex[f"{side}_labels"] if t != IGNORE]
        assert labels == fmt.encode(text)  # no eot, no header tokens
        assert not any(fmt.is_special(t) for t in labels)
        assert fmt.eot_id in ex[f"{side}_ids"]


def test_ranking_example_lengths_end_at_the_eot(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    ex = ranking_example(fmt, [{"role": "user", "content": "Hi"}], "85", "1 2 3", 96)
    assert ex["chosen_ids"][ex["chosen_len"] - 1] == fmt.eot_id
    assert ex["rejected_ids"][ex["rejected_len"] - 1] == fmt.eot_id


def test_a_system_prompt_opens_the_dialog_and_carries_no_loss(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    system = FAMILIES["arithmetic"].system_prompt
    opening = [{"role": "system", "content": system}, *Q]
    ex = sft_example(fmt, opening, "85", 96)
    prompt = prompt_ids(fmt, opening)
    assert prompt[1:][: len(fmt.encode_header("system"))] == fmt.encode_header("system")
    assert len(prompt) > len(prompt_ids(fmt, Q)) + len(fmt.encode(system))
    assert ex["input_ids"][: len(prompt)] == prompt
    assert [t for t in ex["labels"] if t != IGNORE] == fmt.encode("85") + [fmt.eot_id]


def test_synthetic_records_carry_their_family_system_prompt_at_the_configured_share():
    prompts = sample_prompts(400, 3, "train", dict.fromkeys(TASKS, 1.0))
    none, every, some = (synthetic_records(prompts, share, seed=1) for share in (0.0, 1.0, 0.25))
    assert not any(r["steered"] for r in none) and [r["opening"] for r in none] == [p.opening() for p in prompts]
    # The family's system prompt opens the dialog; the steer family's own system prompt is never replaced.
    assert all(r["opening"] == p.opening(FAMILIES[r["task"]].system_prompt) and r["opening"][0]["role"] == "system"
               for r, p in zip(every, prompts, strict=True))
    assert all(r["opening"][0] == p.context[0] for r, p in zip(every, prompts, strict=True) if p.context)
    assert 60 <= sum(r["steered"] for r in some) <= 140  # 100 expected
    assert [r["response"] for r in some] == [p.reference for p in prompts]


def test_an_earlier_assistant_turn_carries_no_loss_and_is_no_dpo_label(post_inputs):
    fmt = load_chat_format(post_inputs["tokenizer"])
    opening = [{"role": "system", "content": "Always answer with exactly one word."},
               {"role": "user", "content": "Name one word about fruit."}, {"role": "assistant", "content": "plum"},
               {"role": "user", "content": "Name one word about sea."}]
    ex = sft_example(fmt, opening, "wave", 200)
    assert [t for t in ex["labels"] if t != IGNORE] == fmt.encode("wave") + [fmt.eot_id]
    pref = preference_example(fmt, opening, "wave", "plum", 200)
    assert [t for t in pref["rejected_labels"] if t != IGNORE] == fmt.encode("plum")  # the reply, not the context's
    assert pref["chosen_ids"][: len(prompt_ids(fmt, opening))] == prompt_ids(fmt, opening)
