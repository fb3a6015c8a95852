"""The options a teacher saw: read from a verbalised question, and lined up with the stored ones.

A teacher answers with the letter its prompt showed. Our own templates show a problem's stored
choices in their stored order; published outputs may have shown another order (Kojima et al.
shuffle Date Understanding's options with their own seed, and so do we, with another). So each
generation records `choice_order`: the stored labels in the order the prompt showed them (the
first shown as (A), the second as (B), ...), and a letter is scored through it.

Verbalisations read here: Kojima et al.'s ``... Answer Choices: (A) shelf (B) board ...``,
Fine-tune-CoT's ``... Answer choices: (A) shelf, (B) board, ....`` (both also after a ``Which choice
is true?`` line), PAL's ``Answer Choices:(a)...``. Options are read in sequence: (A), then the
next (B) after it, and so on, so an option's own text may hold parentheses (``5(√3 + 1)``).

Option texts are compared by `option_key`: Unicode-normalised (NFKC), case-folded, without
whitespace or trailing punctuation, since verbalisations differ in exactly those ("Sam." in
BIG-bench, "Sam" in Fine-tune-CoT, "5 (√3 + 1)" in Kojima's AQuA for AQuA's "5(√3 + 1)").
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Sequence

Choice = dict[str, str]

_HEADER = re.compile(r"(?:answer\s+)?(?:choices|options)\s*:", re.IGNORECASE)
_WHICH_CHOICE = re.compile(r"which\s+choice\s+is\s+true\s*\?\s*$", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_TRAILING = re.compile(r"[.,;:]+$")
_SEPARATOR = re.compile(r"[\s,;]*(?:\bor\b)?[\s,;]*$", re.IGNORECASE)
MAX_OPTIONS = 26


def option_key(text: str) -> str:
    """What two verbalisations of one option have in common (module docstring)."""
    folded = _SPACE.sub("", unicodedata.normalize("NFKC", text).casefold())
    return _TRAILING.sub("", folded)


def _marker(label: str) -> re.Pattern[str]:
    return re.compile(r"\(\s*" + label + r"\s*\)", re.IGNORECASE)


def split_verbalised(question: str) -> tuple[str, list[Choice]] | None:
    """(stem, options as shown) if the question ends with verbalised choices, else None.

    The last "Answer Choices:" (or "Choices:", "Options:") header counts, and it must be followed
    at once by "(A)"; at least two options in sequence must follow.
    """
    headers = list(_HEADER.finditer(question))
    for header in reversed(headers):
        rest = question[header.end() :]
        first = _marker("A").match(rest.lstrip())
        if first is None:
            continue
        position = len(rest) - len(rest.lstrip())
        starts: list[tuple[int, int]] = []
        for index in range(MAX_OPTIONS):
            found = _marker(chr(ord("A") + index)).search(rest, position)
            if found is None:
                break
            starts.append((found.start(), found.end()))
            position = found.end()
        if len(starts) < 2:
            continue
        options = []
        for index, (_, text_start) in enumerate(starts):
            text_end = starts[index + 1][0] if index + 1 < len(starts) else len(rest)
            text = _SEPARATOR.sub("", rest[text_start:text_end]).strip()
            if index + 1 == len(starts):
                text = text.rstrip(".").strip() if text.endswith(".") and not text[:-1].endswith(".") else text
            options.append({"label": chr(ord("A") + index), "text": text})
        stem = question[: header.start()].rstrip()
        stem = _WHICH_CHOICE.sub("", stem).rstrip()
        return stem, options
    return None


def choice_order(shown: Sequence[Choice], stored: Sequence[Choice]) -> list[str] | None:
    """The stored labels in the order `shown` lists the same options; None unless they are the
    same options. Repeated texts (AQuA has a few problems listing one value twice) pair in order:
    the n-th shown copy with the n-th stored copy."""
    if len(shown) != len(stored):
        return None
    by_key: dict[str, list[str]] = defaultdict(list)
    for choice in stored:
        by_key[option_key(choice["text"])].append(choice["label"])
    order = []
    for choice in shown:
        labels = by_key.get(option_key(choice["text"]))
        if not labels:
            return None
        order.append(labels.pop(0))
    return order


def shown_choices(stored: Sequence[Choice], order: Sequence[str] | None) -> list[Choice]:
    """The options as the prompt showed them: letters A, B, ... over the stored texts in `order`
    (the stored order when `order` is None)."""
    if not order:
        return [dict(c) for c in stored]
    text_of = {c["label"]: c["text"] for c in stored}
    return [{"label": chr(ord("A") + i), "text": text_of[label]} for i, label in enumerate(order) if label in text_of]


def stored_label(letter: str, stored: Sequence[Choice], order: Sequence[str] | None) -> str | None:
    """The stored option a shown letter stands for."""
    if not order:
        return letter if any(c["label"] == letter for c in stored) else None
    index = ord(letter) - ord("A")
    return order[index] if 0 <= index < len(order) else None
