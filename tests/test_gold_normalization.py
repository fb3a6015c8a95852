from __future__ import annotations

import pytest

from curation.answers.normalize import AnswerFormatError, normalize_gold
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
