"""From a parsed record to a validated row for the `problem` table."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from curation.answers.normalize import AnswerFormatError, normalize_gold
from curation.errors import InputError, SourceLocation
from curation.ingestion.formats import Choice, ParsedProblem
from curation.models.task import AnswerType

MAX_QUESTION_CHARS = 50_000
MAX_ANSWER_CHARS = 2_000


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


def build_row(
    parsed: ParsedProblem,
    *,
    answer_type: AnswerType,
    split: str,
    source_ref: str,
    location: SourceLocation,
) -> ProblemRow:
    """Validate and normalize one problem; InputError naming `location` if it cannot be stored."""
    question = parsed.question
    if not question:
        raise InputError(location, "the question is empty")
    if len(question) > MAX_QUESTION_CHARS:
        raise InputError(
            location, f"the question is {len(question):,} characters; the limit is {MAX_QUESTION_CHARS:,}"
        )
    raw = parsed.gold
    raw_text = str(raw).strip() if not isinstance(raw, bool) else ("yes" if raw else "no")
    if not raw_text:
        raise InputError(location, "the gold answer is empty")
    if len(raw_text) > MAX_ANSWER_CHARS:
        raise InputError(
            location, f"the gold answer is {len(raw_text):,} characters; the limit is {MAX_ANSWER_CHARS:,}"
        )
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
