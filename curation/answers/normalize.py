"""Canonical forms of answers, per answer type.

Gold answers are stored in canonical form (`problem.gold_answer`) next to the raw text, so that
SQL users compare like with like and verifiers do not re-parse benchmark quirks on every check.

- number: a plain decimal string with no exponent, no trailing zeros and no sign on zero
  ("18.0" -> "18", "1,080" -> "1080", "$5.50" -> "5.5", "9 (apples)" -> "9", "5/2" -> "2.5").
  Percent signs are dropped ("50%" -> "50"): benchmarks that ask for a percentage want its number.
- multiple_choice: the option letter, upper case ("(a)" -> "A", "C)" -> "C").
- yes_no: "yes" or "no" (from yes/no/true/false in any case).
- text: stripped, inner whitespace collapsed; case is kept (matching decides about case).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from curation.models.task import AnswerType

_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_CURRENCY_AND_UNITS = re.compile(r"[$€£¥₹%]")
_LEADING_NUMBER = re.compile(r"^\s*(-?\d[\d,]*(?:\.\d+)?|-?\.\d+)")
_CHOICE_LETTER = re.compile(r"^\s*\(?\s*([A-Za-z])\s*\)?\s*[.):]?\s*$")

YES = frozenset({"yes", "true"})
NO = frozenset({"no", "false"})


class AnswerFormatError(ValueError):
    """The text is not an answer of the expected type."""


def canonical_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise AnswerFormatError(f"{value} is not a finite number")
    if value == value.to_integral_value():
        return str(int(value))  # also turns -0 into 0
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def parse_number(raw: str | int | float) -> Decimal:
    """A gold number from benchmark text: commas, currency, percent and trailing units allowed."""
    if isinstance(raw, bool):
        raise AnswerFormatError(f"{raw!r} is a boolean, not a number")
    if isinstance(raw, int):
        return Decimal(raw)
    if isinstance(raw, float):
        # repr gives the shortest string that round-trips, so 0.1 stays 0.1 (not 0.1000000000000000055).
        return Decimal(repr(raw))
    text = _CURRENCY_AND_UNITS.sub("", raw).strip()
    fraction = _FRACTION.match(text.replace(",", ""))
    if fraction:
        numerator, denominator = (Fraction(part) for part in fraction.groups())
        if denominator == 0:
            raise AnswerFormatError(f"{raw!r} divides by zero")
        quotient = numerator / denominator
        return Decimal(quotient.numerator) / Decimal(quotient.denominator)
    compact = text.replace(",", "")
    if _NUMBER.fullmatch(compact):
        return Decimal(compact)
    # "9 (apples)", "15 cm": a number followed by a unit or note.
    leading = _LEADING_NUMBER.match(text)
    if leading:
        rest = text[leading.end() :].strip()
        if not rest or rest[0] in "(" or rest[0].isalpha():
            try:
                return Decimal(leading.group(1).replace(",", ""))
            except InvalidOperation:
                pass
    raise AnswerFormatError(f"{raw!r} is not a number")


def normalize_choice(raw: str, labels: list[str] | None = None) -> str:
    match = _CHOICE_LETTER.match(str(raw))
    if not match:
        raise AnswerFormatError(f"{raw!r} is not an option letter")
    letter = match.group(1).upper()
    if labels is not None and letter not in labels:
        raise AnswerFormatError(f"option {letter} is not among the choices {', '.join(labels)}")
    return letter


def normalize_yes_no(raw: str | bool) -> str:
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    word = str(raw).strip().strip(".").lower()
    if word in YES:
        return "yes"
    if word in NO:
        return "no"
    raise AnswerFormatError(f"{raw!r} is not yes or no")


def normalize_text(raw: str) -> str:
    text = " ".join(str(raw).split())
    if not text:
        raise AnswerFormatError("the answer is empty")
    return text


def normalize_gold(
    raw: str | int | float | bool, answer_type: AnswerType, *, choice_labels: list[str] | None = None
) -> str:
    """The canonical gold answer for `answer_type`; AnswerFormatError if `raw` is not one."""
    if answer_type is AnswerType.number:
        if type(raw) is int:  # the common case, and bool (a subclass) must not take it
            return str(raw)
        return canonical_decimal(parse_number(raw))
    if answer_type is AnswerType.multiple_choice:
        return normalize_choice(str(raw), choice_labels)
    if answer_type is AnswerType.yes_no:
        return normalize_yes_no(raw if isinstance(raw, bool) else str(raw))
    return normalize_text(str(raw))
