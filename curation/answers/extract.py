"""Finding the final answer in a chain-of-thought rationale.

The rules, tried in this order (the first that finds a marker decides where to look):

1. Fine-tune-CoT student format, ``{rationale} --> {answer} END``: the text after the last ``-->``.
2. Zero-shot-CoT, two stages: the second completion (the text the teacher wrote after
   ``...Therefore, the answer is``), passed as ``answer_output``; or, in a single text, what
   follows the last "Therefore, the answer is".
3. Few-shot CoT: what follows the last "The answer is".
4. Otherwise the whole text, where the *last* candidate counts (a last-number fallback).

Within the text a marker points to, the *first* candidate counts, as in Fine-tune-CoT's
evaluator. What a candidate is depends on the answer type: a number (``1,000``, ``-3.5``,
``$18.00``, ``3/4``, ``2.5e3``; not a hex literal such as ``0x1p3``, nor a number that is the base
or exponent of a power such as ``2^10``, nor one out of range such as ``1e999999999``, see
normalize.py); an option letter (``(B)``, ``B)``, a lone ``B``) or, failing that, the text
of one of the options; yes or no; for free text, the first line with quotes and the final period
removed.

Program rationales need none of this: their answer is the value the program returns (see
workers/sandbox/child.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curation.answers.normalize import canonical_decimal, parse_number
from curation.models.task import AnswerType

_ARROW = re.compile(r"-->")
_THEREFORE = re.compile(r"therefore,?\s+the\s+answer\s+is", re.IGNORECASE)
_THE_ANSWER_IS = re.compile(r"the\s+(?:final\s+)?answer\s+is", re.IGNORECASE)
_NUMBER = re.compile(
    # Not inside a word or a decimal, and not the exponent of a power ("10**10**10", "2^10").
    r"(?<![\w.])(?<!\*\*)(?<!\*\*\s)(?<!\^)(?<!\^\s)"
    r"-?\$?\s?"
    r"(?!0(?:[xX][0-9a-fA-F]|[bB][01]|[oO][0-7]))"  # 0x1p3 is a hex literal, not the number 0
    # Atomic and possessive: when the lookahead below refuses a number, no shorter prefix of it
    # ("2" of "2.5**2") may be taken instead, and a run of thousands of digits costs linear time.
    r"(?>(?:\d++\s*+/\s*+\d++(?![\d.])|\d{1,3}(?:,\d{3})++(?:\.\d++)?|\d++(?:\.\d++)?|\.\d++)"
    r"(?:[eE][-+]?\d++)?%?)"  # 1e-5 is one number, so "1e999999999" cannot pass for 1
    r"(?!\s*(?:\*\*|\^))"  # not the base of a power either
)
_PAREN_LETTER = re.compile(r"\(\s*([A-Za-z])\s*\)")
_LETTER_PAREN = re.compile(r"(?<![A-Za-z])([A-Z])\)")
_LONE_LETTER = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)
_DOTS_AND_SPACE = re.compile(r"[.\s]*")


@dataclass(frozen=True)
class Extraction:
    """`answer` is canonical for the answer type (as problem.gold_answer is), or None."""

    answer: str | None
    rule: str
    span: str | None = None


def _after_last(pattern: re.Pattern[str], text: str) -> str | None:
    matches = list(pattern.finditer(text))
    return text[matches[-1].end() :] if matches else None


def _numbers(text: str) -> list[str]:
    """Canonical numbers in `text`; what fails to parse (1/0, 1e999999999, ...) is not a candidate.

    Never raises: the text is a model's output, and no output may stop a verification batch.
    """
    found = []
    for match in _NUMBER.finditer(text):
        try:
            found.append(canonical_decimal(parse_number(match.group(0).replace(" ", ""))))
        except (ValueError, ArithmeticError):  # AnswerFormatError, decimal's errors, int digit limits
            continue
    return found


def _letters(text: str, labels: list[str]) -> list[str]:
    for pattern in (_PAREN_LETTER, _LETTER_PAREN, _LONE_LETTER):
        letters = [m.group(1).upper() for m in pattern.finditer(text) if m.group(1).upper() in labels]
        if letters:
            return letters
    return []


def _option_texts(text: str, choices: list[dict[str, str]]) -> list[str]:
    """Options named by their text, in order of appearance (longest option first on ties)."""
    lowered = text.lower()
    hits = []
    for choice in sorted(choices, key=lambda c: -len(c["text"])):
        option = choice["text"].strip().lower()
        if option and (position := lowered.find(option)) >= 0:
            hits.append((position, choice["label"]))
    return [label for _, label in sorted(hits)]


def _rstrip_dots_and_space(text: str) -> str:
    # Matched on the reversed text: re.sub(r"[.\s]+$") is quadratic on a long run of dots not at the end.
    tail = _DOTS_AND_SPACE.match(text[::-1])
    return text[: len(text) - tail.end()] if tail else text


def _free_text(segment: str) -> str | None:
    line = segment.strip().splitlines()[0] if segment.strip() else ""
    cleaned = line.strip().strip("\"'“”‘’`").strip()
    cleaned = _rstrip_dots_and_space(cleaned).strip("\"'“”‘’`").strip()
    return cleaned or None


def _without_end(segment: str) -> str:
    """The segment without Fine-tune-CoT's closing "END" (a scan: a regex is quadratic on long whitespace)."""
    stripped = segment.rstrip()
    return stripped[:-3].rstrip() if stripped.endswith("END") else segment


def candidates(text: str, answer_type: AnswerType, choices: list[dict[str, str]] | None = None) -> list[str]:
    """Every answer-like token in `text`, in order, canonical for the answer type."""
    if answer_type is AnswerType.number:
        return _numbers(text)
    if answer_type is AnswerType.multiple_choice:
        labels = [c["label"] for c in choices or []] or [chr(ord("A") + i) for i in range(5)]
        return _letters(text, labels) or _option_texts(text, choices or [])
    if answer_type is AnswerType.yes_no:
        return [m.group(1).lower() for m in _YES_NO.finditer(text)]
    answer = _free_text(text)
    return [answer] if answer else []


def extract_cot_answer(
    text: str,
    answer_type: AnswerType,
    *,
    answer_output: str | None = None,
    choices: list[dict[str, str]] | None = None,
) -> Extraction:
    """The final answer of a CoT rationale, by the rules in the module docstring."""
    marked: list[tuple[str, str | None]] = [
        ("fine-tune-cot-arrow", _after_last(_ARROW, text)),
        ("zero-shot-cot-stage-2", answer_output),
        ("therefore-the-answer-is", _after_last(_THEREFORE, text)),
        ("the-answer-is", _after_last(_THE_ANSWER_IS, text)),
    ]
    for rule, segment in marked:
        if segment is None:
            continue
        segment = _without_end(segment)
        found = candidates(segment, answer_type, choices)
        return Extraction(found[0] if found else None, rule, segment.strip()[:200])
    if answer_type is AnswerType.text:
        return Extraction(None, "no-marker")  # free text has no "last candidate" to fall back on
    found = candidates(text, answer_type, choices)
    return Extraction(found[-1] if found else None, "last-candidate")


def answer_from_program_value(
    value: str | None, answer_type: AnswerType, choices: list[dict[str, str]] | None = None
) -> str | None:
    """A program's returned value as a canonical answer, None if it is not one of the type."""
    if value is None:
        return None
    text = value.strip()
    if answer_type is AnswerType.number:
        try:
            return canonical_decimal(parse_number(text))
        except (ValueError, ArithmeticError):  # AnswerFormatError among them: not a number
            return None
    if answer_type is AnswerType.yes_no:
        lowered = text.lower().strip(".")
        return {"true": "yes", "false": "no", "yes": "yes", "no": "no"}.get(lowered)
    if answer_type is AnswerType.multiple_choice:
        found = candidates(text, answer_type, choices)
        return found[0] if found else None
    return _free_text(text)
