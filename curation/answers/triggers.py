"""Zero-shot-CoT's answer triggers (Kojima et al. 2022), written by templates and read by extraction.

Stage 2 of zero-shot-CoT appends a trigger that says what kind of answer is wanted:

| answer type | trigger |
|---|---|
| number | ``Therefore, the answer (arabic numerals) is`` |
| multiple choice | ``Therefore, among A through E, the answer is`` (the first and last of the task's letters) |
| yes/no | ``Therefore, the answer (Yes or No) is`` |
| text | ``Therefore, the answer is`` |

`STAGE_TWO_TRIGGER` recognises each of these, the plain ``Therefore, the answer is``, and the
same forms without "Therefore," when they carry a hint (Kojima's zero-shot trigger, ``The answer
(arabic numerals) is``, ``Among A through E, the answer is``). The match covers the hint words,
so "(arabic numerals)", "(Yes or No)" and "A through E" are never read as the answer.
"""

from __future__ import annotations

import re

from curation.models.task import AnswerType

_HINT = r"\(\s*(?:arabic\s+numerals?|yes\s+or\s+no)\s*\)"
_AMONG = r"among\s+[A-Za-z]\s+(?:through|to)\s+[A-Za-z]\s*,?"
STAGE_TWO_TRIGGER = re.compile(
    r"\btherefore\s*,?\s+(?:" + _AMONG + r"\s+)?the\s+(?:final\s+)?answer\s*(?:" + _HINT + r"\s*)?(?:is|would\s+be)\b"
    r"|\b" + _AMONG + r"\s+the\s+(?:final\s+)?answer\s*(?:" + _HINT + r"\s*)?(?:is|would\s+be)\b"
    r"|\bthe\s+(?:final\s+)?answer\s*" + _HINT + r"\s*(?:is|would\s+be)\b",
    re.IGNORECASE,
)
# Hint words a stage-2 answer sometimes repeats ("(Yes or No) No."): never candidates either.
HINT_WORDS = re.compile(_HINT + "|" + _AMONG + r"|\byes\s*(?:or|/)\s*no\b", re.IGNORECASE)


def stage_two_trigger(answer_type: AnswerType, labels: list[str] | None = None) -> str:
    """Kojima et al.'s trigger for this answer type (for multiple choice, over these option letters)."""
    if answer_type is AnswerType.number:
        return "Therefore, the answer (arabic numerals) is"
    if answer_type is AnswerType.multiple_choice:
        letters = labels or ["A", "B", "C", "D", "E"]
        return f"Therefore, among {letters[0]} through {letters[-1]}, the answer is"
    if answer_type is AnswerType.yes_no:
        return "Therefore, the answer (Yes or No) is"
    return "Therefore, the answer is"


_NOTHING = re.compile(r"[\s.:,]*")


def last_trigger(text: str) -> re.Match[str] | None:
    """The last stage-2 trigger in `text` that something follows, if any.

    A trigger with nothing after it is an echo: a teacher that repeats its prompt's tail ends on
    one, after the answer it gave to the first (Kojima et al.'s AQuA log has such completions).
    """
    found = [m for m in STAGE_TWO_TRIGGER.finditer(text)]
    for match in reversed(found):
        if _NOTHING.fullmatch(text, match.end()) is None:
            return match
    return found[-1] if found else None
