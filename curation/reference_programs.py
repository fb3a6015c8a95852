"""GSM8K's human solutions as reference rationales: the CoT text and a program derived from them.

A solution is worked text with calculator marks, ``48/2 = <<48/2=24>>24``, and a last line
``#### 72``. From it come:
- the CoT rationale: the text without the marks and without the ``####`` line (the final answer
  is the `####` number, which the verifier reads as the answer stage, and which exports write as
  Fine-tune-CoT's ``--> 72``);
- a program ``def solution(): ... return result``: one assignment per calculator mark, in order,
  named after the words around it (``clips_in_may = 48 / 2``); a number in a later mark that equals
  an earlier mark's result is written as that result's name (the most recent one), so the program
  computes what the solution computes. ``result`` is the step whose annotated result is the
  ``####`` number (the last such step); when no step's is, the last step: the program then says
  what the annotations compute, and the verifier judges it like any other.
No question docstring: PaD strips docstrings before training, and the export puts the question in
the input. A solution without calculator marks has no program (reported, not invented).
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass, field

_MARK = re.compile(r"<<([^<>]*)>>")
_NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?|\.\d+)(?![\w])")
_WORD = re.compile(r"[A-Za-z]+")
_STOPWORDS = frozenset(
    " ".join(
        (
            "a an the and or of to in on at for by with from is are was were be been it its this that these",
            "those so then than there their they he she his her him we you your our i me my has have had do",
            "does did will would can could each per every all total totally altogether now left more less x",
            "times plus minus equals equal which what how many much if as into out up after before",
        )
    ).split()
)
_BUILTINS = frozenset(dir(builtins))
MAX_NAME_WORDS = 3


@dataclass(frozen=True)
class Step:
    name: str
    expression: str  # as the program writes it, earlier results by name
    annotated: str  # the result the mark states


@dataclass
class Derivation:
    cot: str
    answer: str
    program: str | None
    steps: list[Step] = field(default_factory=list)
    # Why the program may not compute the answer, known before it runs: "no-annotations" (no
    # program), "answer-not-annotated" (no step's stated result is the #### number).
    note: str | None = None


def split_solution(solution: str) -> tuple[str, str]:
    """(worked text, the #### answer); ValueError if there is no #### line."""
    body, marker, final = solution.rpartition("####")
    if not marker:
        raise ValueError('the solution has no "#### <number>" line')
    return body.rstrip(), final.strip()


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").strip().rstrip("."))
    except ValueError:
        return None


def _clean_expression(expression: str) -> str:
    """The calculator's syntax as Python: thousands commas go, x and × multiply, ÷ divides, ^ is a
    power, numbers lose leading zeros (``05`` is a syntax error in Python 3)."""
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**")
    text = re.sub(r"(?<=\d)\s*[xX]\s*(?=[\d(.])", " * ", text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    return re.sub(r"(?<![\w.])0+(?=\d)", "", text)


def _name_words(before: str, after: str) -> list[str]:
    # Prefer what follows the result ("... = 24 clips in May"), else what leads up to the mark.
    words = [w.lower() for w in _WORD.findall(after.split(".")[0])]
    named = [w for w in words if w not in _STOPWORDS and len(w) > 1][:MAX_NAME_WORDS]
    if named:
        return named
    words = [w.lower() for w in _WORD.findall(before)]
    return [w for w in words if w not in _STOPWORDS and len(w) > 1][-MAX_NAME_WORDS:]


def _identifier(words: list[str], taken: set[str], index: int) -> str:
    base = "_".join(words) or f"step_{index}"
    if base[0].isdigit() or keyword.iskeyword(base) or base in _BUILTINS or base in ("result", "solution"):
        base = f"{base}_value"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def _substitute(expression: str, known: list[tuple[float, str]]) -> str:
    def replace(match: re.Match[str]) -> str:
        value = _as_number(match.group(1))
        if value is None:
            return match.group(0)
        for result, name in reversed(known):
            if result == value:
                return name
        return match.group(0)

    return _NUMBER.sub(replace, expression)


def derive(solution: str) -> Derivation:
    body, answer = split_solution(solution)
    cot = _MARK.sub("", body).strip()
    steps: list[Step] = []
    known: list[tuple[float, str]] = []
    taken: set[str] = set()
    for line in body.splitlines():
        for mark in _MARK.finditer(line):
            expression, _, stated = mark.group(1).rpartition("=")
            if not _:
                expression, stated = mark.group(1), ""
            after = line[mark.end() :]
            after = after[len(stated.strip()) :] if after.startswith(stated.strip()) else after
            # the words before the mark, without the written-out expression that repeats it
            before = line[: mark.start()].rsplit("=", 1)[0]
            name = _identifier(_name_words(before, after), taken, len(steps) + 1)
            python = _substitute(_clean_expression(expression.strip()), known)
            steps.append(Step(name, python, stated.strip()))
            value = _as_number(stated)
            if value is not None:
                known.append((value, name))
    if not steps:
        return Derivation(cot=cot, answer=answer, program=None, note="no-annotations")
    gold = _as_number(answer)
    final = next((s for s in reversed(steps) if gold is not None and _as_number(s.annotated) == gold), None)
    note = None
    if final is None:
        final, note = steps[-1], "answer-not-annotated"
    lines = ["def solution():", *(f"    {s.name} = {s.expression}" for s in steps)]
    lines += [f"    result = {final.name}", "    return result"]
    return Derivation(cot=cot, answer=answer, program="\n".join(lines) + "\n", steps=steps, note=note)
