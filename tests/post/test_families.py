"""The checkers of the math, multilingual and steer families on hand-written right and wrong answers
(a wrong answer scores 0, a partly right one less than 1), and what their generators guarantee."""

import json

from factory.post.prompts import TaskPrompt, split_of
from factory.post.tasks import sample_prompts, score

BOXES = TaskPrompt("math", "math:boxes:a3,b9,c1", "Paula fills 9 boxes with 3 shells each and has 1 shells left over. "
                   "How many shells are there in all?", "3 * 9 = 27. 27 + 1 = 28. The answer is 28.",
                   {"answer": 28, "intermediate": [27], "lang": "en"})


def test_math_checker_verifies_the_final_answer_and_credits_reached_steps():
    assert score(BOXES, "9 * 3 = 27. 27 + 1 = 28. The answer is 28.") == 1.0  # another right trace
    assert score(BOXES, "The answer is 28.") == 1.0  # a verified final answer is what counts
    assert score(BOXES, "3 + 9 = 12. 12 + 1 = 13. The answer is 13.") == 0.0
    assert score(BOXES, "I do not know.") == 0.0
    assert score(BOXES, "3 * 9 = 27. 27 + 1 = 29. The answer is 29.") == 0.5  # right first step, wrong answer
    assert score(BOXES, "3 * 9 = 27. 27 + 1 = 28.") == 0.5  # no final answer sentence: not verified
    assert score(BOXES, "The answer is 28. The answer is 30.") == 0.0  # the last final answer counts


def test_multilingual_checker_wants_the_answer_in_the_question_language():
    p = TaskPrompt("multilingual", "math:boxes:a11,b3,c6@fr", "Ana remplit 3 boîtes de 11 pommes chacune et il reste 6 "
                   "pommes. Combien de pommes y a-t-il en tout ?", "11 * 3 = 33. 33 + 6 = 39. La réponse est 39.",
                   {"answer": 39, "intermediate": [33], "lang": "fr"})
    assert score(p, p.reference) == 1.0
    assert score(p, "3 * 11 = 33. 33 + 6 = 39. La réponse est 39.") == 1.0
    assert score(p, "11 * 3 = 33. 33 + 6 = 39. The answer is 39.") == 0.5  # the English sentence: not verified
    # The French sentence in a German answer: verified, but the LID model hears German.
    assert score(p, "Elf mal drei ergibt dreiunddreißig, und mit sechs weiteren Äpfeln sind es neununddreißig. "
                    "La réponse est 39.") == 0.5
    assert score(p, "La réponse est 12.") == 0.0 and score(p, "Je ne sais pas.") == 0.0


def test_translations_of_one_problem_share_its_split():
    prompts = sample_prompts(300, 0, "train", {"multilingual": 1.0})
    assert {p.params["lang"] for p in prompts} == {"de", "fr", "es"}
    assert all(p.key.endswith("@" + p.params["lang"]) and split_of(p.key.split("@")[0]) == "train" for p in prompts)
    english = {p.key for p in sample_prompts(2000, 1, "test", {"math": 1.0})}
    assert not {p.key.split("@")[0] for p in prompts} & english


def _steer(constraint: str, k: int = 2) -> TaskPrompt:
    return TaskPrompt("steer", f"steer:{constraint}:sea1:fruit{k}", "Name two words about fruit.", "",
                      {"constraint": constraint, "topic": "fruit", "k": k},
                      ({"role": "system", "content": "..."}, {"role": "user", "content": "Name one word about sea."},
                       {"role": "assistant", "content": "wave"}))


def test_steer_checker_holds_each_constraint_and_the_content():
    cases = {  # constraint: (right, right format with wrong names, right names in another format, wrong)
        "json": (json.dumps({"answer": ["pear", "plum"]}), json.dumps({"answer": ["cat", "dog"]}), "pear plum",
                 '{"answer": "cat"}'),
        "list": ("- pear\n- plum", "- cat\n- dog", "pear, plum", "cat dog"),
        "upper": ("PEAR PLUM", "CAT DOG", "pear plum", "cat dog"),
        "marker": ("pear plum beep", "cat dog beep", "pear plum", "cat dog"),
    }
    for constraint, (right, wrong_names, wrong_format, wrong) in cases.items():
        p = _steer(constraint)
        assert [score(p, r) for r in (right, wrong_names, wrong_format, wrong)] == [1.0, 0.5, 0.25, 0.0], constraint
    one = _steer("one_word", k=1)
    assert [score(one, r) for r in ("plum", "cat", "plum pear", "cat dog")] == [1.0, 0.5, 0.0, 0.0]
    assert score(_steer("list"), "- pear\n- pear") == 0.5  # the same name twice is not two names


def test_steer_dialogs_open_with_the_constraint_and_a_first_turn_that_follows_it():
    counts = {"one": 1, "two": 2, "three": 3}
    for p in sample_prompts(200, 0, "train", {"steer": 1.0}):
        system, first_q, first_a = p.context
        assert (system["role"], first_q["role"], first_a["role"]) == ("system", "user", "assistant")
        words = first_q["content"].rstrip(".").split()  # "Name two words about fruit"
        first = TaskPrompt("steer", p.key, first_q["content"], first_a["content"],
                           {**p.params, "topic": words[-1], "k": counts[words[1]]}, p.context[:1])
        assert score(first, first_a["content"]) == 1.0 and score(p, p.reference) == 1.0
