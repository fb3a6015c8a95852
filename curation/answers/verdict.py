"""Verdicts: is a rationale right? The same rules for teacher, student and refined rationales.

Two verifiers, versioned; a change to the rules is a new version, whose labels sit beside the old:
- ``answer-match`` (CoT): the extracted answer (extract.py) equals the gold one (match.py);
  no answer found is ``unparseable``. For multiple choice the letter the teacher wrote is read
  against the options its prompt showed, mapped through the generation's `choice_order` to the
  stored option, and that is compared with the gold option.
- ``program-execution`` (programs): the program's value, run in the sandbox, equals the gold
  answer. A syntax error is ``unparseable``; a program that fails, times out or is killed is
  ``error``; one that runs but yields no value of the answer type is ``unparseable``.

Version 2 reads stage-2 triggers, Markdown and LaTeX, signs, fractions, lowercase and in-order
option letters, true/false, and rounded golds, and scores letters against the options the
teacher saw (docs/verification.md lists every rule). Version 3 also reads a whole number
written in words right after a trigger or marker ("The answer is three."). Version 4
reads, right after a trigger or marker, "negative 5", "1.5 million" and "3 and 1/2" (where
the answer ends), an option letter in quotes opening the answer ('E'), a free-text answer after
a colon or dash ("The answer is: ny") and "25% of 80 = 20" as an equation; anywhere, Unicode
fractions ("3½"), «ny» as a quotation and "500" as the option "Rs. 500". Version 5 (this one)
also reads shares in words there: "two and a half", "3 and three quarters", "one half", "two
thirds of the pizza" ("5 tenth graders" and "6 halves" stay counts). Labels of earlier versions
stay as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from curation.answers.choices import shown_choices, stored_label
from curation.answers.extract import answer_from_program_value, extract_cot_answer
from curation.answers.match import match_rule
from curation.models import AnswerType, ExecutionStatus, Verdict

ANSWER_VERIFIER = "answer-match"
PROGRAM_VERIFIER = "program-execution"
VERIFIER_VERSION = "5"

Choice = dict[str, str]


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    answer: str | None
    details: dict[str, Any]

    @property
    def score(self) -> float | None:
        if self.verdict is Verdict.correct:
            return 1.0
        return 0.0 if self.verdict is Verdict.incorrect else None


def _compare(answer: str | None, gold: str, answer_type: AnswerType, details: dict[str, Any]) -> Judgement:
    if answer is None:
        return Judgement(Verdict.unparseable, None, details)
    rule = match_rule(answer, gold, answer_type)
    verdict = Verdict.correct if rule is not None else Verdict.incorrect
    return Judgement(verdict, answer, {**details, "match": rule})


def judge_cot(
    body: str,
    gold: str,
    answer_type: AnswerType,
    *,
    answer_output: str | None = None,
    choices: Sequence[Choice] | None = None,
    choice_order: Sequence[str] | None = None,
    student: bool = False,
) -> Judgement:
    """`choices` are the problem's stored options; `choice_order` the stored labels in the order
    the prompt showed them (None: the stored order). `student`: the text is a student's output,
    so Fine-tune-CoT's ``-->`` format applies."""
    if answer_type is not AnswerType.multiple_choice or not choices:
        extraction = extract_cot_answer(body, answer_type, answer_output=answer_output, student=student)
        details: dict[str, Any] = {"rule": extraction.rule, "extracted": extraction.answer, "gold": gold}
        return _compare(extraction.answer, gold, answer_type, details)
    shown = shown_choices(choices, choice_order)
    extraction = extract_cot_answer(body, answer_type, answer_output=answer_output, choices=shown, student=student)
    option = stored_label(extraction.answer, choices, choice_order) if extraction.answer else None
    details = {"rule": extraction.rule, "extracted": extraction.answer, "option": option, "gold": gold}
    if choice_order:
        details["choice_order"] = list(choice_order)
    return _compare(option, gold, answer_type, details)


def judge_program(
    status: ExecutionStatus,
    value: str | None,
    gold: str,
    answer_type: AnswerType,
    *,
    error_type: str | None = None,
    choices: list[Choice] | None = None,
) -> Judgement:
    details: dict[str, Any] = {"execution_status": status.value, "value": value, "gold": gold}
    if status is ExecutionStatus.syntax:
        return Judgement(Verdict.unparseable, None, {**details, "error_type": error_type})
    if status is not ExecutionStatus.ok:
        return Judgement(Verdict.error, None, {**details, "error_type": error_type})
    answer = answer_from_program_value(value, answer_type, choices)
    return _compare(answer, gold, answer_type, {**details, "extracted": answer})
