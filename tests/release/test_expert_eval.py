"""Experts against their base: the rows of eval_report's experts section and the answer likelihood."""

import math

import pytest
import torch

from factory.data.tokenizer import save_tokenizer, train_bpe
from factory.model.chat_format import load_chat_format
from factory.model.flavors import model_args
from factory.model.llama import Transformer
from factory.post.tasks import sample_prompts
from factory.release.expert_eval import answer_nll, expert_rows


def _ppl(**streams):
    return {"ppl": streams}


def test_rows_compare_each_expert_with_the_base_on_its_domain_and_the_rest():
    ppl = {"base_checkpoint": _ppl(code=400.0, general=200.0, multilingual=100.0),
           "code_expert": _ppl(code=300.0, general=220.0, multilingual=130.0),
           "multilingual_expert": _ppl(code=480.0, general=210.0, multilingual=80.0)}
    nll = {"base_checkpoint": {"nll_per_token": 2.5, "prompts": 10},
           "code_expert": {"nll_per_token": 2.1, "prompts": 10}}
    rows = expert_rows(ppl, nll)
    code = rows["code_expert"]
    assert (code["domain"], code["base_ppl"], code["expert_ppl"]) == ("code", 400.0, 300.0)
    assert code["domain_ppl_rel_change"] == -0.25
    assert code["other_streams_ppl_rel_change"] == pytest.approx((0.1 + 0.3) / 2)
    assert (code["base_answer_nll"], code["expert_answer_nll"], code["answer_nll_change"]) == (2.5, 2.1, -0.4)
    multi = rows["multilingual_expert"]
    assert multi["domain_ppl_rel_change"] == -0.2 and multi["task_family"] is None and "answer_nll_change" not in multi
    # An expert the graph did not build, or a domain without a validation stream, has no row.
    assert set(expert_rows({"base_checkpoint": _ppl(general=1.0), "code_expert": _ppl(general=1.0)}, {})) == set()


def test_answer_nll_is_the_reference_answers_cross_entropy(tmp_path):
    prompts = sample_prompts(3, 0, "test", {"arithmetic": 1.0})
    tok = train_bpe([f"{p.prompt} {p.reference}" for p in prompts] * 20, 300, num_special_tokens=16)
    save_tokenizer(tok, tmp_path / "tok")
    fmt = load_chat_format(tmp_path / "tok")
    torch.manual_seed(0)
    model = Transformer(model_args("debug", tok.get_vocab_size(), max_seq_len=128)).eval()
    got = answer_nll(model, fmt, prompts, batch_size=2)

    total, count = 0.0, 0
    for p in prompts:  # the answer's tokens and its <|eot_id|>, one dialog at a time, no padding
        ids, target = fmt.encode_dialog([{"role": "user", "content": p.prompt},
                                         {"role": "assistant", "content": p.reference}])
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).float()[0], -1)
        for t in range(1, len(ids)):
            if target[t]:
                total -= float(logp[t - 1, ids[t]])
                count += 1
    assert got["prompts"] == 3 and got["skipped_too_long"] == 0
    assert got["nll_per_token"] == pytest.approx(total / count, abs=1e-3)
    assert got["nll_per_token"] == pytest.approx(math.log(tok.get_vocab_size()), rel=0.2)  # untrained: near uniform

    short = Transformer(model_args("debug", tok.get_vocab_size(), max_seq_len=8))
    assert answer_nll(short, fmt, prompts) == {"nll_per_token": None, "prompts": 0, "skipped_too_long": 3}
