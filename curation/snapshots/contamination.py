"""Keeping evaluation questions out of training snapshots.

A training snapshot refuses every problem of an evaluation split of any task, and every problem
whose question fingerprint (curation.ingestion.rows.question_fingerprint: whitespace collapsed,
case folded) is that of an evaluation problem of any task, so a copy ingested under another task
or split is caught too. The refusal names the problems (or, with the spec's
`drop_contaminated`, they are left out and listed in the manifest).

Beyond exact copies, the manifest reports n-gram overlap, as open-r1 decontaminates: a training
question shares an 8-gram (8 consecutive lower-cased word tokens) with an evaluation question.
It is reported, not refused: short shared phrases ("how many apples does she have left") are
common between honest problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.models import Problem, Split, SplitPurpose, Task

NGRAM = 8
MAX_NAMED = 20
_TOKEN = re.compile(r"\w+")


def ngrams(text: str, n: int = NGRAM) -> set[int]:
    tokens = _TOKEN.findall(text.lower())
    return {hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass
class EvaluationIndex:
    """Every evaluation problem's fingerprint (to the first such problem, named) and 8-grams."""

    fingerprints: dict[str, str]
    grams: set[int]
    questions: int

    @classmethod
    def load(cls, session: Session) -> EvaluationIndex:
        rows = session.execute(
            select(Problem.content_hash, Task.name, Problem.split, Problem.source_ref, Problem.question)
            .join(Task, Task.id == Problem.task_id)
            .join(Split, (Split.task_id == Problem.task_id) & (Split.name == Problem.split))
            .where(Split.purpose == SplitPurpose.eval)
            .order_by(Problem.id)
        )
        fingerprints: dict[str, str] = {}
        grams: set[int] = set()
        count = 0
        for content_hash, task, split, source_ref, question in rows:
            fingerprints.setdefault(content_hash, f"{task}/{split}/{source_ref}")
            grams |= ngrams(question)
            count += 1
        return cls(fingerprints, grams, count)


@dataclass
class ContaminationReport:
    refused: int = 0
    named: list[dict[str, Any]] = field(default_factory=list)
    checked_questions: int = 0
    overlapping_questions: int = 0
    overlap_examples: list[dict[str, Any]] = field(default_factory=list)

    def refuse(self, entry: dict[str, Any]) -> None:
        self.refused += 1
        if len(self.named) < MAX_NAMED:
            self.named.append(entry)

    def as_dict(self, index: EvaluationIndex | None, dropped: bool) -> dict[str, Any]:
        return {
            "evaluation_questions": index.questions if index else 0,
            "refused_problems": self.refused,
            "refused": self.named,
            "dropped": dropped and self.refused > 0,
            "ngram_overlap": {
                "n": NGRAM,
                "training_questions": self.checked_questions,
                "overlapping": self.overlapping_questions,
                "examples": self.overlap_examples,
            },
        }


def problem_name(task: str, split: str, source_ref: str, problem_id: int) -> str:
    return f"{task}/{split}/{source_ref} (problem {problem_id})"
