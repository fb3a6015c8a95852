"""Whether a predicted answer equals the gold one, per answer type.

- number: equal within a relative tolerance of 1e-6 (absolute 1e-9 near zero), so ``18.0`` equals
  ``18`` and a program's ``18.000000000000004`` counts, but ``17.6`` does not equal ``18``.
  This is stricter than PaD (``round(float(output)) == int(gold)``, which accepts 17.6 for 18)
  and more correct than Fine-tune-CoT, which compares GSM8K and MultiArith answers as strings
  (so "18.0" != "18").
- multiple_choice: the same option letter (extraction already maps an option's text to its letter).
- yes_no: the same word.
- text: equal after case folding and removing whitespace, quotes and periods (Fine-tune-CoT's
  rule for Last Letter Concatenation).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from curation.models.task import AnswerType

REL_TOL = Decimal("1e-6")
ABS_TOL = Decimal("1e-9")
_TEXT_NOISE = re.compile(r"[\s\"'“”‘’`.]")


def numbers_match(predicted: str, gold: str) -> bool:
    try:
        p, g = Decimal(predicted), Decimal(gold)
    except InvalidOperation:
        return False
    return abs(p - g) <= max(ABS_TOL, REL_TOL * abs(g))


def answers_match(predicted: str | None, gold: str, answer_type: AnswerType) -> bool:
    """Both answers canonical (as extraction and ingestion produce them)."""
    if predicted is None:
        return False
    if answer_type is AnswerType.number:
        return numbers_match(predicted, gold)
    if answer_type is AnswerType.text:
        return _TEXT_NOISE.sub("", predicted).casefold() == _TEXT_NOISE.sub("", gold).casefold()
    return predicted.strip().casefold() == gold.strip().casefold()
