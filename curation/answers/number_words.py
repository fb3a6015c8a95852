"""Numbers written as English words: "The answer is three." / "twenty-five" / "one hundred and five".

Read only where an answer is expected to begin (right after a trigger or an answer marker, see
extract.py): anywhere else, "one day" or "two of her friends" are words of the story, not answers.
"""

from __future__ import annotations

import re

_UNITS = {
    word: value
    for value, word in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ]
    )
}
_TENS = {
    word: 10 * (i + 2)
    for i, word in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"])
}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_SIGNS = {"minus": -1, "negative": -1}

_WORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True))

# Shares in words, which extract.py reads after a whole number ("two and a half", "3 fifths"):
# each name and what it divides by; plurals add "s" (and "halves").
SHARE_DENOMINATORS = {
    "half": 2, "third": 3, "quarter": 4, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
    "ninth": 9, "tenth": 10, "twelfth": 12, "sixteenth": 16, "twentieth": 20, "hundredth": 100, "thousandth": 1000,
}  # fmt: skip
SHARE_WORDS = "|".join(["halves", *(f"{name}s?" for name in SHARE_DENOMINATORS)])
# How many shares, in "and a half", "and three quarters".
SHARE_NUMERATORS = {"a": 1, **{word: value for word, value in _UNITS.items() if 1 <= value <= 9}}


def share_denominator(word: str) -> int:
    """What a share's name ("thirds", "half", "halves") divides by."""
    word = word.lower()
    return 2 if word == "halves" else SHARE_DENOMINATORS[word.removesuffix("s")]


# A run of number words joined by spaces, hyphens or "and", opening the text (after spaces,
# quotes, "$" or an opening bracket), optionally signed. "five and one half" is five, and then a
# share (extract.py), not the run "five and one".
_SHARE_AFTER_AND = rf"(?!(?:{'|'.join(w for w in SHARE_NUMERATORS if w != 'a')})[\s-]+(?:{SHARE_WORDS})\b)"
_LEADING = re.compile(
    rf"[\s\"'“‘(\[$:=]*(?P<phrase>(?:(?:minus|negative)\s+)?(?:{_WORD})"
    rf"(?:(?:\s+and\s+{_SHARE_AFTER_AND}|[\s-]+)(?:{_WORD}))*)\b",
    re.IGNORECASE,
)
# "one of the children", "two-thirds", "one another": a word of the sentence, not a count.
_NOT_A_COUNT_AFTER = re.compile(r"\s*(?:-\s*\w|of\b|another\b|or\s+(?:more|two|the)\b)", re.IGNORECASE)


def _value(words: list[str]) -> int | None:
    """The integer that a well-formed run of number words names, or None ("five three")."""
    total, current, last = 0, 0, ""
    smallest_scale = 10**12
    for word in words:
        if word in _UNITS or word in _TENS:
            value = _UNITS.get(word, _TENS.get(word, 0))
            # "twenty five" adds a unit to a ten; two units or two tens in a row are two numbers.
            if last in _UNITS or (last in _TENS and value >= 10):
                return None
            current += value
        elif word == "hundred":
            if current == 0 or current >= 100:
                return None
            current *= 100
        else:  # thousand, million, billion: each smaller than the one before ("two million five thousand")
            scale = _SCALES[word]
            if current == 0 or scale >= smallest_scale:
                return None
            total += current * scale
            current, smallest_scale = 0, scale
        last = word
    return total + current


def leading_number_words(text: str) -> tuple[int, int] | None:
    """The integer that opens `text` in words, and where its words end; or None."""
    match = _LEADING.match(text)
    if match is None or _NOT_A_COUNT_AFTER.match(text, match.end()):
        return None
    words = [w for w in re.split(r"[\s-]+", match.group("phrase").lower()) if w and w != "and"]
    sign = _SIGNS.get(words[0], 1)
    if sign < 0:
        words = words[1:]
    value = _value(words)
    return None if value is None else (sign * value, match.end())
