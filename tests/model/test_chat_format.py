"""ChatFormat: golden token ids of the Llama 3 dialog format, equality with the Jinja template, targets."""

import jinja2
import pytest

from factory.data import tokenizer as T
from factory.model import tokenizer_files as F
from factory.model.chat_format import ChatFormat, load_chat_format

TEXTS = (["The quick brown fox jumps over 12345 lazy dogs.\n\nIt's 2026!"] * 5
         + ["def add(a, b):\n    return a + b\n"] * 5 + ["Hallo Welt, wie geht's? 1999"] * 3)


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    T.save_tokenizer(T.train_bpe(TEXTS, 300, num_special_tokens=16), folder)
    return folder


def test_golden_dialog_prompt_ids(tok_dir):
    fmt = load_chat_format(tok_dir)
    ids = fmt.encode_dialog_prompt([{"role": "user", "content": "What is 12+34?"}])
    assert ids == [284, 290, 84, 82, 270, 291, 198, 198, 54, 71, 64, 83, 220, 72, 82, 220, 16, 17, 10, 18, 19, 30,
                   293, 290, 64, 82, 82, 72, 82, 83, 64, 77, 83, 291, 198, 198]
    assert fmt.encode_header("user") == [290, 84, 82, 270, 291, 198, 198]
    assert fmt.encode_message({"role": "user", "content": " 12 "}) == [290, 84, 82, 270, 291, 198, 198, 16, 17, 293]


def test_encoding_matches_the_jinja_chat_template(tok_dir):
    fmt = load_chat_format(tok_dir)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def add(a, b):"},
                {"role": "assistant", "content": "return a + b"}, {"role": "user", "content": "Thanks!"}]
    text = jinja2.Environment().from_string(F.CHAT_TEMPLATE).render(messages=messages, add_generation_prompt=True)
    assert fmt.tokenizer.encode(text).ids == fmt.encode_dialog_prompt(messages)
    assert fmt.decode(fmt.encode_dialog_prompt(messages)) == text


def test_targets_are_assistant_content_and_its_eot(tok_dir):
    fmt = load_chat_format(tok_dir)
    ids, target = fmt.encode_dialog([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "12"}])
    assert len(ids) == len(target)
    assert [i for i, t in zip(ids, target, strict=True) if t] == [16, 17, fmt.eot_id]
    prompt = fmt.encode_dialog_prompt([{"role": "user", "content": "hi"}])
    assert ids[: len(prompt)] == prompt and not any(target[: len(prompt)])
    assert fmt.is_special(fmt.eot_id) and not fmt.is_special(16)
    assert fmt.stop_tokens == {fmt.eot_id, fmt.special[F.EOM], fmt.eos_id}
    assert isinstance(fmt, ChatFormat)
