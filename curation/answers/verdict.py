"""Verdicts: is a rationale right? The same rules for teacher, student and refined rationales.

Two verifiers, versioned; a change to the rules is a new version, whose labels sit beside the old:
- ``answer-match`` (CoT): the extracted answer (extract.py) equals the gold one (match.py);
  no answer found is ``unparseable``.
- ``program-execution`` (programs): the program's value, run in the sandbox, equals the gold
  answer. A syntax error is ``unparseable``; a program that fails, times out or is killed is
  ``error``; one that runs but yields no value of the answer type is ``unparseable``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from curation.answers.extract import answer_from_program_value, extract_cot_answer
from curation.answers.match import answers_match
from curation.models import AnswerType, ExecutionStatus, Verdict

ANSWER_VERIFIER = "answer-match"
PROGRAM_VERIFIER = "program-execution"
VERIFIER_VERSION = "1"


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
    verdict = Verdict.correct if answers_match(answer, gold, answer_type) else Verdict.incorrect
    return Judgement(verdict, answer, details)


def judge_cot(
    body: str,
    gold: str,
    answer_type: AnswerType,
    *,
    answer_output: str | None = None,
    choices: list[dict[str, str]] | None = None,
) -> Judgement:
    extraction = extract_cot_answer(body, answer_type, answer_output=answer_output, choices=choices)
    details = {"rule": extraction.rule, "extracted": extraction.answer, "gold": gold}
    return _compare(extraction.answer, gold, answer_type, details)


def judge_program(
    status: ExecutionStatus,
    value: str | None,
    gold: str,
    answer_type: AnswerType,
    *,
    error_type: str | None = None,
    choices: list[dict[str, str]] | None = None,
) -> Judgement:
    details: dict[str, Any] = {"execution_status": status.value, "value": value, "gold": gold}
    if status is ExecutionStatus.syntax:
        return Judgement(Verdict.unparseable, None, {**details, "error_type": error_type})
    if status is not ExecutionStatus.ok:
        return Judgement(Verdict.error, None, {**details, "error_type": error_type})
    answer = answer_from_program_value(value, answer_type, choices)
    return _compare(answer, gold, answer_type, {**details, "extracted": answer})
