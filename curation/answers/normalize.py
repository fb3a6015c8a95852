"""Canonical forms of answers, per answer type.

Gold answers are stored in canonical form (`problem.gold_answer`) next to the raw text, so that
SQL users compare like with like and verifiers do not re-parse benchmark quirks on every check.

- number: a plain decimal string with no exponent, no trailing zeros and no sign on zero
  ("18.0" -> "18", "1,080" -> "1080", "$5.50" -> "5.5", "9 (apples)" -> "9", "5/2" -> "2.5").
  Percent signs are dropped ("50%" -> "50"): benchmarks that ask for a percentage want its number.
- multiple_choice: the option letter, upper case ("(a)" -> "A", "C)" -> "C").
- yes_no: "yes" or "no" (from yes/no/true/false in any case).
- text: stripped, inner whitespace collapsed; case is kept (matching decides about case).

A number whose magnitude is absurd (decimal exponent beyond ±MAX_EXPONENT, such as "1e999999999" or
five thousand nines) is not a number here, nor are NaN and infinities: no benchmark answer is one,
and exact arithmetic on such values can take minutes or exhaust memory. Zero is zero, whatever its
written exponent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from curation.errors import quoted
from curation.models.task import AnswerType

_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FRACTION = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_CURRENCY_AND_UNITS = re.compile(r"[$€£¥₹%]")
# With its exponent, if any: "1e5 km" is 100000, not 1 followed by the unit "e5 km".
_LEADING_NUMBER = re.compile(r"^\s*(-?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)")
_RADIX_PREFIX = re.compile(r"\s*-?0[xXbBoO]")
_CHOICE_LETTER = re.compile(r"^\s*\(?\s*([A-Za-z])\s*\)?\s*[.):]?\s*$")

MAX_EXPONENT = 100
"""Numbers are refused unless 1e-100 <= |value| < 1e101 (or zero): see the module docstring."""
_MAX_INT = 10 ** (MAX_EXPONENT + 1)

YES = frozenset({"yes", "true"})
NO = frozenset({"no", "false"})


class AnswerFormatError(ValueError):
    """The text is not an answer of the expected type."""


def bounded(value: Decimal) -> Decimal:
    """`value` if it is a number we work with (see the module docstring), else AnswerFormatError."""
    if not value.is_finite():
        raise AnswerFormatError(f"{value} is not a finite number")
    if value.is_zero():
        return Decimal(0)  # 0E+999999999 is harmless, but its exponent would fail the test below
    if abs(value.adjusted()) > MAX_EXPONENT:
        # Only the order of magnitude is shown: the digits themselves may run to thousands.
        raise AnswerFormatError(f"a number of order 1e{value.adjusted():+d} is out of range (limit 1e±{MAX_EXPONENT})")
    return value


def canonical_decimal(value: Decimal) -> str:
    value = bounded(value)
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
        return bounded(Decimal(raw))
    if isinstance(raw, float):
        # repr gives the shortest string that round-trips, so 0.1 stays 0.1 (not 0.1000000000000000055).
        return bounded(Decimal(repr(raw)))
    text = _CURRENCY_AND_UNITS.sub("", raw).strip()
    fraction = _FRACTION.match(text.replace(",", ""))
    if fraction:
        # Each part is bounded before dividing, and the quotient after: "9"*5000 + "/7" is refused, not computed.
        numerator, denominator = (bounded(Decimal(part)) for part in fraction.groups())
        if denominator == 0:
            raise AnswerFormatError(f"{quoted(raw)} divides by zero")
        return bounded(numerator / denominator)
    compact = text.replace(",", "")
    if _NUMBER.fullmatch(compact):
        return bounded(Decimal(compact))
    # "9 (apples)", "15 cm": a number followed by a unit or note (but 0x1p3 is no 0 followed by "x1p3").
    leading = _LEADING_NUMBER.match(text)
    if leading and not _RADIX_PREFIX.match(text):
        rest = text[leading.end() :].strip()
        if not rest or rest[0] in "(" or rest[0].isalpha():
            try:
                return bounded(Decimal(leading.group(1).replace(",", "")))
            except InvalidOperation:
                pass
    raise AnswerFormatError(f"{quoted(raw)} is not a number")


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
        if type(raw) is int and -_MAX_INT < raw < _MAX_INT:  # the common case; bool (a subclass) must not take it
            return str(raw)
        return canonical_decimal(parse_number(raw))
    if answer_type is AnswerType.multiple_choice:
        return normalize_choice(str(raw), choice_labels)
    if answer_type is AnswerType.yes_no:
        return normalize_yes_no(raw if isinstance(raw, bool) else str(raw))
    return normalize_text(str(raw))
