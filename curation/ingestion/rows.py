"""From a parsed record to a validated row for the `problem` table."""

from __future__ import annotations

import hashlib
import math
from typing import Any, NamedTuple

from curation.answers.normalize import AnswerFormatError, normalize_gold
from curation.db.base import json_dumps
from curation.errors import InputError, SourceLocation, shortened
from curation.ingestion.formats import Choice, ParsedProblem
from curation.ingestion.splits import split_name_problem
from curation.models.task import AnswerType

MAX_QUESTION_CHARS = 50_000
MAX_ANSWER_CHARS = 2_000
MAX_SOURCE_REF_CHARS = 255  # the width of problem.source_ref
_MAX_ANSWER_INT = 10**MAX_ANSWER_CHARS  # an int this large has more digits than an answer may have


class GoldAnswerError(InputError):
    """The gold answer is not of the task's answer type."""


def question_fingerprint(question: str) -> str:
    """sha256 of the question with whitespace collapsed and case folded.

    Two copies of one question (GSM8K test and PAL's gsm.jsonl, say) get the same fingerprint,
    which is how evaluation questions are kept out of training data across tasks and sources.
    """
    return hashlib.sha256(" ".join(question.split()).casefold().encode()).hexdigest()


PROBLEM_COLUMNS = (
    "task_id", "split", "source_ref", "question", "gold_answer_raw", "gold_answer",
    "choices", "reference_rationale", "content_hash", "meta",
)  # fmt: skip


class ProblemRow(NamedTuple):
    """A validated problem, ready to insert; `location` is kept for error messages.

    A NamedTuple: ingestion builds one per record, and it is several times cheaper to make than a
    frozen dataclass.
    """

    split: str
    source_ref: str
    question: str
    gold_answer_raw: str
    gold_answer: str
    choices: list[Choice] | None
    reference_rationale: str | None
    content_hash: str
    meta: dict[str, Any] | None
    location: SourceLocation

    def values(self, task_id: int) -> tuple[Any, ...]:
        """The row in PROBLEM_COLUMNS order."""
        return (
            task_id, self.split, self.source_ref, self.question, self.gold_answer_raw, self.gold_answer,
            self.choices, self.reference_rationale, self.content_hash, self.meta,
        )  # fmt: skip


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None. PostgreSQL text holds no NUL character, and
    neither database driver can encode a lone surrogate (which JSON's "\\ud800" escape produces)."""
    if "\x00" in value:
        return f"it holds a NUL character (at position {value.index(chr(0)):,}), which PostgreSQL text cannot"
    if not value.isascii():  # O(1) for ASCII strings, the common case
        try:
            value.encode()
        except UnicodeEncodeError as error:
            return f"it is not valid Unicode (a lone surrogate at position {error.start:,})"
    return None


def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_holds_nul(item) for item in value)
    return False


def json_problem(value: object) -> str | None:
    """Why `value` cannot be stored in a JSON column, or None.

    Encoded with the columns' own encoder: what it refuses (integers beyond 64 bits, lone
    surrogates, objects nested too deep, types it does not know) would otherwise fail the whole
    batch's insert, with no record named. jsonb also refuses NUL characters, which it escapes.
    """
    try:
        encoded = json_dumps(value)
    except (TypeError, ValueError) as error:  # orjson.JSONEncodeError is a TypeError
        return f"it is not storable as JSON ({error})"
    if "\\u0000" in encoded and _holds_nul(value):  # the walk only when the cheap test says maybe
        return "it holds a NUL character, which PostgreSQL's jsonb cannot"
    return None


def _check_gold_type(raw: object, answer_type: AnswerType, location: SourceLocation) -> str | int | float | bool:
    """The gold answer if its type can be one of `answer_type`: text, a number, or (yes/no only) a boolean."""
    if type(raw) is str:  # the common cases first: this runs once per record
        return raw
    if type(raw) is int and -_MAX_ANSWER_INT < raw < _MAX_ANSWER_INT:
        return raw
    if isinstance(raw, bool):
        if answer_type is not AnswerType.yes_no:
            # true/false would become "True" or 1: neither is what a number, option or text task means.
            raise GoldAnswerError(
                location, f"gold answer: a boolean ({str(raw).lower()}) is not a {answer_type} answer"
            )
        return raw
    if isinstance(raw, float) and not math.isfinite(raw):
        raise GoldAnswerError(location, f"gold answer: {raw} is not a finite number")
    if isinstance(raw, int) and not -_MAX_ANSWER_INT < raw < _MAX_ANSWER_INT:
        # Checked before str(raw), which is slow for such numbers (and refuses those of over 4,300 digits).
        raise InputError(location, f"the gold answer has more than {MAX_ANSWER_CHARS:,} digits")
    if not isinstance(raw, str | int | float):
        raise GoldAnswerError(location, f"gold answer should be text or a number, found {type(raw).__name__}")
    return raw


def build_row(
    parsed: ParsedProblem,
    *,
    answer_type: AnswerType,
    split: str,
    source_ref: str,
    location: SourceLocation,
) -> ProblemRow:
    """Validate and normalize one problem; InputError naming `location` if it cannot be stored."""
    split_problem = split_name_problem(split)
    if split_problem is not None:
        raise InputError(location, split_problem)
    if not source_ref or len(source_ref) > MAX_SOURCE_REF_CHARS:
        raise InputError(
            location,
            f"the record's id (source_ref) {shortened(source_ref, 40)!r} is {len(source_ref):,} characters; "
            f"1 to {MAX_SOURCE_REF_CHARS} fit",
        )
    question = parsed.question
    if not question:
        raise InputError(location, "the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            location, f"the question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}"
        )
    raw = _check_gold_type(parsed.gold, answer_type, location)
    raw_text = str(raw).strip() if not isinstance(raw, bool) else ("yes" if raw else "no")
    if not raw_text:
        raise InputError(location, "the gold answer is empty")
    if len(raw_text) > MAX_ANSWER_CHARS:
        raise InputError(
            location, f"the gold answer is {len(raw_text):,} characters; the limit is {MAX_ANSWER_CHARS:,}"
        )
    rationale = parsed.reference_rationale or ""
    # One cheap test for the common case (all ASCII, no NUL) before naming what is wrong.
    if (
        not (question.isascii() and rationale.isascii() and raw_text.isascii() and source_ref.isascii())
        or "\x00" in question
        or "\x00" in rationale
        or "\x00" in raw_text
        or "\x00" in source_ref
        or "\x00" in split
        or not split.isascii()
    ):
        texts = (
            ("the split name", split),
            ("the record's id (source_ref)", source_ref),
            ("the question", question),
            ("the gold answer", raw_text),
            ("the reference rationale", rationale),
        )
        for what, value in texts:
            if (problem := text_problem(value)) is not None:
                raise InputError(location, f"cannot store {what}: {problem}")
    for what, json_value in (("the choices", parsed.choices), ("the extra fields (meta)", parsed.meta)):
        if json_value is not None and (problem := json_problem(json_value)) is not None:
            raise InputError(location, f"cannot store {what}: {problem}")
    if answer_type is AnswerType.multiple_choice and not parsed.choices:
        raise InputError(location, "a multiple-choice problem needs choices")
    labels = [c["label"] for c in parsed.choices] if parsed.choices else None
    try:
        gold = normalize_gold(raw, answer_type, choice_labels=labels)
    except AnswerFormatError as error:
        raise GoldAnswerError(location, f"gold answer: {error} (task answers are {answer_type})") from None
    return ProblemRow(
        split,
        source_ref,
        question,
        raw_text,
        gold,
        parsed.choices,
        parsed.reference_rationale,
        question_fingerprint(question),
        parsed.meta,
        location,
    )
