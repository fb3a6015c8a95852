from __future__ import annotations

from decimal import Decimal

import pytest

from curation.answers.normalize import AnswerFormatError, canonical_decimal, normalize_gold, parse_number
from curation.models import AnswerType


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("72", "72"),
        ("1,080", "1080"),
        ("$5.50", "5.5"),
        ("50%", "50"),
        ("9 (apples)", "9"),
        ("15 cm", "15"),
        ("5/2", "2.5"),
        (18.0, "18"),
        ("18.0", "18"),
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        ("-3", "-3"),
        ("-0", "0"),
        ("2.", "2"),
        (".5", "0.5"),
        ("1e3", "1000"),
        (12, "12"),
        ("109,200,000", "109200000"),
    ],
)
def test_numbers(raw: str | float, expected: str) -> None:
    assert normalize_gold(raw, AnswerType.number) == expected


@pytest.mark.parametrize("raw", ["3:4", "They are equal", "", "abc", "1/0", True])
def test_not_numbers(raw: object) -> None:
    with pytest.raises(AnswerFormatError):
        normalize_gold(raw, AnswerType.number)  # type: ignore[arg-type]


ABSURD = [
    "1e999999999",
    "-" + "9" * 5000,
    "9" * 5000,
    "0." + "0" * 200 + "1",
    "9" * 5000 + "/7",
    "1/" + "9" * 5000,
    "1e100/1e-100",
    "NaN",
    "sNaN",
    "inf",
    "-Infinity",
    "1e-999999",
    "0x1p3",
    "0b101",
    "10**10**10",
    "1/0",
    "0/0",
    "1e101",
    "1e-101",
    10**101,
    -(10**5000),
    1e300,
    float("inf"),
    float("nan"),
]


@pytest.mark.parametrize("raw", ABSURD, ids=range(len(ABSURD)))
def test_absurd_numbers_are_not_numbers(raw: str | int | float) -> None:
    """Out of range (beyond 1e±100), not finite, or not decimal: refused quickly, never computed."""
    with pytest.raises(AnswerFormatError):
        normalize_gold(raw, AnswerType.number)
    if isinstance(raw, str):
        with pytest.raises(AnswerFormatError):
            parse_number(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1e100", "1" + "0" * 100),
        ("-1e100", "-1" + "0" * 100),
        ("1e-100", "0." + "0" * 99 + "1"),
        (10**100, "1" + "0" * 100),
        ("0e999999999", "0"),  # zero is zero, whatever its exponent
        ("1." + "0" * 5000, "1"),  # many digits, but of a sane magnitude
    ],
)
def test_numbers_at_the_range_limits(raw: str | int, expected: str) -> None:
    assert normalize_gold(raw, AnswerType.number) == expected


def test_canonical_decimal_refuses_what_it_cannot_print() -> None:
    for value in ("1e999999999", "NaN", "-Infinity", "1e-101"):
        with pytest.raises(AnswerFormatError):
            canonical_decimal(Decimal(value))
    assert canonical_decimal(Decimal("0E-999999")) == "0"


@pytest.mark.parametrize(("raw", "expected"), [("(a)", "A"), ("C", "C"), ("c)", "C"), ("B.", "B")])
def test_choices(raw: str, expected: str) -> None:
    assert normalize_gold(raw, AnswerType.multiple_choice, choice_labels=list("ABCDE")) == expected


def test_choice_must_exist() -> None:
    with pytest.raises(AnswerFormatError, match="not among the choices"):
        normalize_gold("F", AnswerType.multiple_choice, choice_labels=list("ABCDE"))


@pytest.mark.parametrize(("raw", "expected"), [("Yes", "yes"), ("no.", "no"), (True, "yes"), ("FALSE", "no")])
def test_yes_no(raw: str | bool, expected: str) -> None:
    assert normalize_gold(raw, AnswerType.yes_no) == expected


def test_text_keeps_case_and_collapses_space() -> None:
    assert normalize_gold("  ya   Jo ", AnswerType.text) == "ya Jo"
