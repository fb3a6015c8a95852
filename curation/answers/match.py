"""Whether a predicted answer equals the gold one, per answer type.

- number: two integers must be equal. Otherwise the two are equal when they differ by at most
  ABS_TOL (1e-6) or by at most REL_TOL (1e-9) of the gold answer's size, whichever is larger.
  So the float noise of a program counts (``0.30000000000000004`` for ``0.3``,
  ``7.999999999999999`` for ``8``, ``18.000000000000004`` for ``18``), and a decimal written to
  six places or more counts for an answer that has no finite decimal (``33.333333`` for
  ``100/3``), but ``17.6`` does not equal ``18`` and ``1000001`` does not equal ``1000000``:
  genuinely different integers never match, however large. REL_TOL only matters above 1,000,
  for the noise of large float results (in Python ``57383200000 / 92 * 92`` is
  ``57383200000.00001``). This is stricter than PaD (``round(float(output)) == int(gold)``,
  which accepts 17.6 for 18) and more correct than Fine-tune-CoT, which compares GSM8K and
  MultiArith answers as strings (so "18.0" != "18"). A value that is not a number, or is out of
  normalize.py's range (``1e999999999``, NaN), matches nothing.
- multiple_choice: the same option letter (extraction already maps an option's text to its letter).
- yes_no: the same word.
- text: equal after case folding and removing whitespace, quotes and periods (Fine-tune-CoT's
  rule for Last Letter Concatenation).
"""

from __future__ import annotations

import re
from decimal import Decimal

from curation.answers.normalize import bounded
from curation.models.task import AnswerType

REL_TOL = Decimal("1e-9")
ABS_TOL = Decimal("1e-6")
_TEXT_NOISE = re.compile(r"[\s\"'“”‘’`.]")


def numbers_match(predicted: str, gold: str) -> bool:
    """Never raises: `predicted` may be any text a model wrote."""
    try:
        p, g = bounded(Decimal(predicted)), bounded(Decimal(gold))
        if p == p.to_integral_value() and g == g.to_integral_value():
            return p == g
        return abs(p - g) <= max(ABS_TOL, REL_TOL * abs(g))
    except (ValueError, ArithmeticError):  # not a number (InvalidOperation), or out of range (AnswerFormatError)
        return False


def answers_match(predicted: str | None, gold: str, answer_type: AnswerType) -> bool:
    """Both answers canonical (as extraction and ingestion produce them)."""
    if predicted is None:
        return False
    if answer_type is AnswerType.number:
        return numbers_match(predicted, gold)
    if answer_type is AnswerType.text:
        return _TEXT_NOISE.sub("", predicted).casefold() == _TEXT_NOISE.sub("", gold).casefold()
    return predicted.strip().casefold() == gold.strip().casefold()
