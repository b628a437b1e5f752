"""Multi-step word problems with step-by-step solutions, in English and in three corpus languages
(recipe: "Math Reasoning" — step-wise reasoning traces kept only when the final answer verifies;
"Multilinguality" — the same capabilities in other languages, the answer's language checked).

Five kinds of two-step problem: buying and giving away, boxes and leftovers, a fraction given away
(1/d), metres and centimetres, and a simple linear equation ("multiplies it by a and adds b; the
result is y"). The solution is one equation per step and a final sentence: ``"9 * 4 = 36. 36 + 5 =
41. The answer is 41."`` (German, French and Spanish end with their own sentence).

- ``math`` (English): the final answer verifies -> 1; otherwise 0.5 x the share of the reference's
  intermediate results the trace reached (two wrong traces can still be ranked); no final sentence
  and no right intermediate -> 0.
- ``multilingual`` (de, fr, es): the same checker with the language's final sentence, and the
  answer's language checked by the corpus's fastText LID model (``factory.data.langid``): a right
  answer in the wrong language scores 0.5.

A problem's key is its kind and numbers (names, objects and language are surface): translations of
one problem share its split (``factory.post.prompts.split_of`` hashes the part before ``@``), so a
held-out problem is never trained on in another language. Each kind's number ranges give ~5,000
problems, ~1,000 of them in test.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache

from factory.post.prompts import TaskFamily, TaskPrompt

LANGUAGES = ("de", "fr", "es")  # the multilingual family's; all are Debian Reference languages of the corpus
_NAMES = ("Ana", "Ben", "Clara", "David", "Elena", "Felix", "Hugo", "Ines", "Jonas", "Lara", "Marco", "Nina",
          "Oscar", "Paula", "Rosa", "Tomas")
# Objects per language (Spanish: with the gender its question word agrees with).
_ITEMS = {
    "en": ("apples", "books", "coins", "cards", "eggs", "pens", "shells", "stamps", "stones", "tickets"),
    "de": ("Äpfel", "Bücher", "Münzen", "Karten", "Eier", "Stifte", "Muscheln", "Briefmarken", "Steine", "Tickets"),
    "fr": ("pommes", "livres", "pièces", "cartes", "œufs", "stylos", "coquillages", "timbres", "pierres", "billets"),
    "es": ("manzanas:f", "libros:m", "monedas:f", "cartas:f", "huevos:m", "bolígrafos:m", "conchas:f", "sellos:m",
           "piedras:f", "billetes:m"),
}
_TEMPLATES = {
    "en": {
        "buy": "{name} has {a} {item}. {name} buys {b} more and gives {c} away. How many {item} does {name} have now?",
        "boxes": "{name} fills {b} boxes with {a} {item} each and has {c} {item} left over. How many {item} are "
                 "there in all?",
        "share": "{name} has {a} {item} and gives 1/{d} of them to a friend. How many {item} does {name} keep?",
        "units": "A ribbon is {a} m {c} cm long. How long is it in cm?",
        "algebra": "{name} thinks of a number, multiplies it by {a} and adds {b}. The result is {y}. What is the "
                   "number?",
    },
    "de": {
        "buy": "{name} hat {a} {item}. {name} kauft {b} dazu und verschenkt {c}. Wie viele {item} hat {name} jetzt?",
        "boxes": "{name} füllt {b} Kisten mit je {a} {item} und hat noch {c} {item} übrig. Wie viele {item} sind es "
                 "insgesamt?",
        "share": "{name} hat {a} {item} und gibt 1/{d} davon einem Freund. Wie viele {item} behält {name}?",
        "units": "Ein Band ist {a} m {c} cm lang. Wie lang ist es in cm?",
        "algebra": "{name} denkt sich eine Zahl, multipliziert sie mit {a} und addiert {b}. Das Ergebnis ist {y}. "
                   "Welche Zahl ist es?",
    },
    "fr": {
        "buy": "{name} a {a} {item}. {name} en achète {b} de plus et en donne {c}. Combien de {item} a {name} "
               "maintenant ?",
        "boxes": "{name} remplit {b} boîtes de {a} {item} chacune et il reste {c} {item}. Combien de {item} y a-t-il "
                 "en tout ?",
        "share": "{name} a {a} {item} et en donne 1/{d} à un ami. Combien de {item} garde {name} ?",
        "units": "Un ruban mesure {a} m {c} cm. Combien mesure-t-il en cm ?",
        "algebra": "{name} pense à un nombre, le multiplie par {a} et ajoute {b}. Le résultat est {y}. Quel est ce "
                   "nombre ?",
    },
    "es": {
        "buy": "{name} tiene {a} {item}. {name} compra {b} más y regala {c}. ¿{how_many} {item} tiene {name} ahora?",
        "boxes": "{name} llena {b} cajas con {a} {item} cada una y le sobran {c} {item}. ¿{how_many} {item} hay en "
                 "total?",
        "share": "{name} tiene {a} {item} y le da 1/{d} a un amigo. ¿{how_many} {item} se queda {name}?",
        "units": "Una cinta mide {a} m {c} cm. ¿Cuánto mide en cm?",
        "algebra": "{name} piensa un número, lo multiplica por {a} y suma {b}. El resultado es {y}. ¿Cuál es el "
                   "número?",
    },
}
ANSWER_SENTENCE = {"en": "The answer is", "de": "Die Antwort ist", "fr": "La réponse est", "es": "La respuesta es"}
_SYSTEM = {
    "en": "Solve it step by step, one equation per step, then end with: The answer is N.",
    "multilingual": "Solve it step by step in the language of the question and end with its sentence for the answer.",
}


@dataclass(frozen=True)
class _Problem:
    kind: str
    numbers: dict[str, int]
    steps: tuple[str, ...]  # "a op b = c", one per step
    intermediate: tuple[int, ...]  # the results before the last
    answer: int


def _draw(rng: random.Random) -> _Problem:
    kind = rng.choice(("buy", "boxes", "share", "units", "algebra"))
    if kind == "buy":
        a, b = rng.randint(2, 40), rng.randint(2, 9)
        c = rng.randint(1, 9)
        s = a + b
        return _Problem(kind, {"a": a, "b": b, "c": c}, (f"{a} + {b} = {s}", f"{s} - {c} = {s - c}"), (s,), s - c)
    if kind == "boxes":
        a, b, c = rng.randint(2, 12), rng.randint(2, 9), rng.randint(1, 9)
        p = a * b
        return _Problem(kind, {"a": a, "b": b, "c": c}, (f"{a} * {b} = {p}", f"{p} + {c} = {p + c}"), (p,), p + c)
    if kind == "share":
        d, q = rng.randint(2, 6), rng.randint(2, 12)
        a = d * q
        return _Problem(kind, {"a": a, "d": d}, (f"{a} / {d} = {q}", f"{a} - {q} = {a - q}"), (q,), a - q)
    if kind == "units":
        a, c = rng.randint(1, 9), rng.randint(10, 99)
        p = a * 100
        return _Problem(kind, {"a": a, "c": c}, (f"{a} * 100 = {p}", f"{p} + {c} = {p + c}"), (p,), p + c)
    x, a, b = rng.randint(1, 12), rng.randint(2, 6), rng.randint(1, 12)
    y = a * x + b
    return _Problem(kind, {"a": a, "b": b, "y": y}, (f"{y} - {b} = {y - b}", f"{y - b} / {a} = {x}"), (y - b,), x)


def _render(task: str, lang: str, problem: _Problem, rng: random.Random) -> TaskPrompt:
    item, _, gender = rng.choice(_ITEMS[lang]).partition(":")
    how_many = "Cuántas" if gender == "f" else "Cuántos"
    prompt = _TEMPLATES[lang][problem.kind].format(name=rng.choice(_NAMES), item=item, how_many=how_many,
                                                   **problem.numbers)
    reference = ". ".join(problem.steps) + f". {ANSWER_SENTENCE[lang]} {problem.answer}."
    content = f"math:{problem.kind}:" + ",".join(f"{k}{v}" for k, v in sorted(problem.numbers.items()))
    key = content if lang == "en" else f"{content}@{lang}"
    return TaskPrompt(task, key, prompt, reference,
                      {"answer": problem.answer, "intermediate": list(problem.intermediate), "lang": lang})


def _math(rng: random.Random) -> TaskPrompt:
    return _render("math", "en", _draw(rng), rng)


def _multilingual(rng: random.Random) -> TaskPrompt:
    lang = rng.choice(LANGUAGES)
    return _render("multilingual", lang, _draw(rng), rng)


def _score_trace(p: TaskPrompt, response: str) -> float:
    finals = re.findall(re.escape(ANSWER_SENTENCE[p.params["lang"]]) + r"\s*(-?\d+)", response)
    if finals and int(finals[-1]) == p.params["answer"]:
        return 1.0
    found = set(re.findall(r"-?\d+", response))
    reached = [str(v) in found for v in p.params["intermediate"]]
    return 0.5 * sum(reached) / len(reached)


@lru_cache(maxsize=1 << 14)
def _language(text: str) -> str:
    from factory.data.langid import detect_languages

    return detect_languages([text])[0][0]


def _score_multilingual(p: TaskPrompt, response: str) -> float:
    s = _score_trace(p, response)
    if s == 1.0 and _language(response) != p.params["lang"]:
        return 0.5  # the right answer in another language
    return s


MATH = TaskFamily("math", _math, _score_trace, _SYSTEM["en"], verified_traces=True)
MULTILINGUAL = TaskFamily("multilingual", _multilingual, _score_multilingual, _SYSTEM["multilingual"],
                          verified_traces=True)
