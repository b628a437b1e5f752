"""Steerability: a system prompt's constraint held over a multi-turn dialog (recipe: "Steerability"
— "system prompts ... response length, format, tone and character/persona", collected over
multi-turn dialogs — checked programmatically instead of by annotators).

The dialog: a system prompt with one of five constraints, a first user question with an assistant
answer that follows it, then a second question; the response to the second is scored. Questions
ask to "Name k words about <topic>" (k = 1-3; ``factory.post.families.vocabulary.TOPICS``). Constraints:

- ``json``: ``{"answer": [...]}`` with the names as a JSON list;
- ``one_word``: a single word (its questions ask for one name);
- ``list``: one name per line, each line starting with ``- ``;
- ``upper``: the names in capital letters, separated by spaces;
- ``marker``: a persona's marker — the names, then the word ``beep``.

Score: 1.0 when the format holds and the names are k distinct words of the topic; 0.5 for the
format with wrong names, 0.25 for the right names in another format, else 0. The key is the
constraint and both questions; held-out dialogs are new combinations of them.
"""

from __future__ import annotations

import json
import random

from factory.post.families.vocabulary import TOPICS
from factory.post.prompts import TaskFamily, TaskPrompt

CONSTRAINTS: dict[str, str] = {
    "json": 'Always answer in JSON: {"answer": [the names]}.',
    "one_word": "Always answer with exactly one word.",
    "list": "Always answer as a list: one name per line, each line starting with '- '.",
    "upper": "Always answer in capital letters only.",
    "marker": "You are a robot. End every answer with the word beep.",
}
_COUNT_WORDS = {1: "one", 2: "two", 3: "three"}


def _render(constraint: str, names: list[str]) -> str:
    if constraint == "json":
        return json.dumps({"answer": names})
    if constraint == "list":
        return "\n".join(f"- {n}" for n in names)
    if constraint == "upper":
        return " ".join(names).upper()
    if constraint == "marker":
        return " ".join(names) + " beep"
    return " ".join(names)  # one_word: a single name


def _parse(constraint: str, response: str) -> list[str] | None:
    """The names of a response if it follows ``constraint``, else None."""
    text = response.strip()
    if constraint == "json":
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        answer = value.get("answer") if isinstance(value, dict) and set(value) == {"answer"} else None
        ok = isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer)
        return answer if ok else None
    if constraint == "list":
        lines = text.splitlines()
        ok = lines and all(line.startswith("- ") and len(line.split()) == 2 for line in lines)
        return [line[2:] for line in lines] if ok else None
    words = text.split()
    if constraint == "upper":
        return words if words and text == text.upper() and any(c.isalpha() for c in text) else None
    if constraint == "marker":
        return words[:-1] if len(words) >= 2 and words[-1] == "beep" else None
    return words if len(words) == 1 else None


def _names_right(names: list[str], topic: str, k: int) -> bool:
    lowered = [n.lower() for n in names]
    return len(lowered) == k == len(set(lowered)) and all(n in TOPICS[topic] for n in lowered)


def _question(rng: random.Random, constraint: str) -> tuple[str, int]:
    topic = rng.choice(sorted(TOPICS))
    return topic, 1 if constraint == "one_word" else rng.randint(1, 3)


def _ask(topic: str, k: int) -> str:
    return f"Name {_COUNT_WORDS[k]} {'word' if k == 1 else 'words'} about {topic}."


def _steer(rng: random.Random) -> TaskPrompt:
    constraint = rng.choice(sorted(CONSTRAINTS))
    (t1, k1), (t2, k2) = _question(rng, constraint), _question(rng, constraint)
    first = _render(constraint, rng.sample(TOPICS[t1], k1))
    context = ({"role": "system", "content": CONSTRAINTS[constraint]},
               {"role": "user", "content": _ask(t1, k1)},
               {"role": "assistant", "content": first})
    return TaskPrompt("steer", f"steer:{constraint}:{t1}{k1}:{t2}{k2}", _ask(t2, k2),
                      _render(constraint, rng.sample(TOPICS[t2], k2)),
                      {"constraint": constraint, "topic": t2, "k": k2}, context)


def _score_steer(p: TaskPrompt, response: str) -> float:
    constraint, topic, k = p.params["constraint"], p.params["topic"], p.params["k"]
    names = _parse(constraint, response)
    if names is not None:
        return 1.0 if _names_right(names, topic, k) else 0.5
    loose = [w.strip("-,.\"'[]{}:").lower() for w in response.split()]
    loose = [w for w in loose if w and w not in ("answer", "beep")]
    return 0.25 if _names_right(loose, topic, k) else 0.0


# The constraint lives in the dialog's own system prompt, which a steer never replaces.
STEER = TaskFamily("steer", _steer, _score_steer, "Follow the system prompt's format in every answer.")
