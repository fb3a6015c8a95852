"""Whether a predicted answer equals the gold one, per answer type, and by which rule.

- number, in this order (`number_match` names the rule that matched):
  - ``exact``: equal values (``18.0`` is ``18``). Two integers match only this way, however
    large: ``1000001`` is not ``1000000``.
  - ``tolerance``: they differ by at most ABS_TOL (1e-6) or by at most REL_TOL (1e-9) of the gold
    answer's size, whichever is larger. So the float noise of a program counts
    (``0.30000000000000004`` for ``0.3``, ``7.999999999999999`` for ``8``), and a decimal written to
    six places or more counts for an answer with no finite decimal (``33.333333`` for ``100/3``).
    REL_TOL only matters above 1,000, for the noise of large float results (in Python
    ``57383200000 / 92 * 92`` is ``57383200000.00001``).
  - ``rounded-gold``: the gold answer is a rounded value, not an exact one, and the prediction
    rounds to it: with d decimals in the gold, ``round(p, d) == gold`` (half up). ASDiv stores
    ``3.333`` for 10/3 and ``5.7`` for 51/9, so a teacher answering ``3.3333`` or ``10/3`` is right.
    A gold is taken as rounded when the simplest fraction that rounds to it (the one with the
    smallest denominator in [gold - ½·10^-d, gold + ½·10^-d)) has a denominator of at most
    ROUNDED_MAX_DENOMINATOR that has a prime factor other than 2 and 5: its decimal never ends,
    so the stated digits are taken as its rounding (``3.333`` is 10/3 rounded, ``5.7`` 17/3,
    ``14.57`` 102/7; ``2.5`` is 5/2 and exact, ``0.46`` is 6/13 at the simplest and stays exact).
    The price: an exact one-decimal gold such as ``2.7`` (8/3 rounds to it) also accepts ``2.67``;
    the label records ``rounded-gold`` so such matches can be found. Integers are never rounded
    values here, so a whole-number gold (GSM8K's) is never loosened.
  ``17.6`` is no match for ``18``, so this is stricter than PaD (``round(float(output)) ==
  int(gold)``) and more correct than Fine-tune-CoT, which compares GSM8K and MultiArith answers as
  strings ("18.0" != "18"). A value that is not a number, or is out of normalize.py's range
  (``1e999999999``, NaN), matches nothing.
- multiple_choice: the same option letter (verdict.py maps a shown letter to the stored option).
- yes_no: the same word.
- text: equal after case folding and removing whitespace, quotes and periods (Fine-tune-CoT's
  rule for Last Letter Concatenation).
"""

from __future__ import annotations

import functools
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from fractions import Fraction

from curation.answers.normalize import bounded
from curation.models.task import AnswerType

REL_TOL = Decimal("1e-9")
ABS_TOL = Decimal("1e-6")
ROUNDED_MAX_DENOMINATOR = 12
"""A rounded gold is the rounding of a fraction with at most this denominator: the divisions word
problems make (thirds, sixths, sevenths, ninths, averages over a dozen items or fewer). Larger ones
would make most two-decimal amounts (``0.46`` is the rounding of 6/13) count as rounded."""
_MAX_ROUNDED_DECIMALS = 12
_TEXT_NOISE = re.compile(r"[\s\"'“”‘’`.]")


def _simplest_in(low: Fraction, high: Fraction) -> Fraction:
    """The fraction with the smallest denominator in [low, high] (0 <= low <= high): the
    continued-fraction descent, in steps logarithmic in the denominators."""
    whole = low.numerator // low.denominator
    if whole == low:
        return Fraction(whole)
    if whole + 1 <= high:
        return Fraction(whole + 1)
    # Both bounds share the integer part: recurse on the reciprocals of their fractional parts.
    return whole + 1 / _simplest_in(1 / (high - whole), 1 / (low - whole))


def _terminates(denominator: int) -> bool:
    for prime in (2, 5):
        while denominator % prime == 0:
            denominator //= prime
    return denominator == 1


@functools.lru_cache(maxsize=4096)
def rounded_gold_places(gold: str) -> int | None:
    """d if `gold` (canonical) is a rounded value with d decimals (module docstring), else None."""
    try:
        value = bounded(Decimal(gold))
    except (ValueError, ArithmeticError):
        return None
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0 or -exponent > _MAX_ROUNDED_DECIMALS:
        return None
    places = -exponent
    half = Fraction(1, 2 * 10**places)
    magnitude = abs(Fraction(value))
    if magnitude <= half:
        return None
    simplest = _simplest_in(magnitude - half, magnitude + half)
    if simplest == magnitude + half:  # rounds half up, to the next value: not this gold's rounding
        simplest = _simplest_in(magnitude - half, magnitude + half - Fraction(1, 10 ** (places + 8)))
    if simplest.denominator <= ROUNDED_MAX_DENOMINATOR and not _terminates(simplest.denominator):
        return places
    return None


def number_match(predicted: str, gold: str) -> str | None:
    """The rule by which `predicted` matches `gold` ("exact", "tolerance", "rounded-gold"), or None.

    Never raises: `predicted` may be any text a model wrote.
    """
    try:
        p, g = bounded(Decimal(predicted)), bounded(Decimal(gold))
        if p == g:
            return "exact"
        if p == p.to_integral_value() and g == g.to_integral_value():
            return None
        if abs(p - g) <= max(ABS_TOL, REL_TOL * abs(g)):
            return "tolerance"
        places = rounded_gold_places(gold)
        if places is not None and p.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP) == g:
            return "rounded-gold"
        return None
    except (ValueError, ArithmeticError, InvalidOperation):  # not a number, or out of range
        return None


def match_rule(predicted: str | None, gold: str, answer_type: AnswerType) -> str | None:
    """How the canonical answers match ("exact" for every type but numbers' looser rules), or None."""
    if predicted is None:
        return None
    if answer_type is AnswerType.number:
        return number_match(predicted, gold)
    if answer_type is AnswerType.text:
        same = _TEXT_NOISE.sub("", predicted).casefold() == _TEXT_NOISE.sub("", gold).casefold()
    else:
        same = predicted.strip().casefold() == gold.strip().casefold()
    return "exact" if same else None


def answers_match(predicted: str | None, gold: str, answer_type: AnswerType) -> bool:
    """Both answers canonical (as extraction and ingestion produce them)."""
    return match_rule(predicted, gold, answer_type) is not None
