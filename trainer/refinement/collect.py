"""Collecting a student's failures: its failed program outputs on a training split, each with the
interpreter's feedback.

The outputs are those of the training run's evaluations on that split (`curation eval --model
run:R --task T --split train` makes one). Only a training split is read: an evaluation split is
refused by name before anything is read, and every collected problem is checked again to sit
in a training split (a repair example built from a test problem would train on the test set,
which is what PaD's own refinement data did).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from curation.errors import CurationError, NotFoundError
from curation.models import AnswerType, Evaluation, Rationale, Split, SplitPurpose, Task, TrainingRun, TrainingStatus
from trainer.refinement.feedback import execution_feedback


@dataclass(frozen=True)
class Failure:
    rationale_id: int
    problem_id: int
    task: str
    split: str
    body: str
    verdict: str
    execution_status: str | None
    error_type: str | None
    feedback: str
    round: int  # the failed attempt's round: 0 for a student's own output


def check_training_split(session: Session, split: str, task: str | None = None) -> None:
    """Refuse `split` unless it is a training split of every task that has it (of `task` only, if
    given); an evaluation split is named in the error."""
    query = select(Task.name, Split.purpose).join(Task, Task.id == Split.task_id).where(Split.name == split)
    if task is not None:
        query = query.where(Task.name == task)
    rows = session.execute(query).all()
    if not rows:
        raise NotFoundError(f"no task has a split named {split!r}" + (f" (task {task})" if task else ""))
    held_out = sorted(name for name, purpose in rows if purpose is not SplitPurpose.train)
    if held_out:
        raise CurationError(
            f"split {split!r} is an evaluation split of {', '.join(held_out)}: refinement collects failures "
            "on training splits only"
        )


_FAILED = text(
    """
SELECT ra.id, ra.problem_id, t.name, p.split, sp.purpose, ra.body, cl.verdict, ce.status, ce.value,
       ce.error_type, ce.error_message, t.answer_type, p.choices, COALESCE(ra.refinement_round, 0)
FROM rationale ra
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
JOIN split sp ON sp.task_id = p.task_id AND sp.name = p.split
JOIN current_label cl ON cl.rationale_id = ra.id
LEFT JOIN current_execution ce ON ce.rationale_id = ra.id
WHERE ra.evaluation_id = :evaluation_id AND ra.kind = 'program' AND cl.verdict <> 'correct'
  AND NOT EXISTS (
      SELECT 1 FROM rationale child WHERE child.parent_id = ra.id AND child.evaluation_id = ra.evaluation_id
  )
ORDER BY ra.problem_id, ra.id"""
)


def training_evaluations(session: Session, training_run_id: int, split: str, task: str | None = None) -> list[int]:
    """The run's completed greedy evaluations on `split`, oldest first. A sample or step-beam
    evaluation of the same split holds other outputs of the same problems (N samples, beams): read
    too, one problem would give a repair example per evaluation."""
    method = func.coalesce(Evaluation.decoding["method"].as_string(), "greedy")
    query = (
        select(Evaluation.id)
        .join(Task, Task.id == Evaluation.task_id)
        .where(
            Evaluation.training_run_id == training_run_id,
            Evaluation.split == split,
            Evaluation.status == TrainingStatus.completed,
            or_(Evaluation.decoding.is_(None), method == "greedy"),
        )
        .order_by(Evaluation.id)
    )
    if task is not None:
        query = query.where(Task.name == task)
    return list(session.execute(query).scalars())


def collect_failures(session: Session, training_run_id: int, split: str, task: str | None = None) -> list[Failure]:
    """The failed program outputs of the run's completed greedy evaluations on `split` (a training
    split), one per problem, the last attempt of each (an output repaired within its evaluation
    counts by its repair)."""
    check_training_split(session, split, task)
    run = session.get(TrainingRun, training_run_id)
    if run is None:
        raise NotFoundError(f"training run {training_run_id} does not exist")
    evaluations = training_evaluations(session, training_run_id, split, task)
    if not evaluations:
        raise CurationError(
            f"training run {training_run_id} has no completed evaluation on split {split!r}: run "
            f"`curation eval --model run:{training_run_id} --task TASK --split {split}` first"
        )
    failures: list[Failure] = []
    # One failure per problem: from the newest greedy evaluation that has an output for it (an
    # older one, under another limit or prompt format, is what the student did before).
    seen: set[int] = set()
    for evaluation_id in reversed(evaluations):
        attempted = set(
            session.execute(select(Rationale.problem_id).where(Rationale.evaluation_id == evaluation_id)).scalars()
        )
        for row in session.execute(_FAILED, {"evaluation_id": evaluation_id}):
            if row[1] in seen:
                continue
            (
                rid,
                pid,
                task_name,
                split_name,
                purpose,
                body,
                verdict,
                status,
                value,
                etype,
                emsg,
                atype,
                choices,
                rnd,
            ) = row
            if purpose != SplitPurpose.train.value:  # the split check above makes this unreachable
                raise CurationError(f"rationale {rid}: problem {pid} is in evaluation split {split_name!r}")
            if isinstance(choices, str):
                choices = orjson.loads(choices)
            answer_type = AnswerType(atype)
            feedback = (
                execution_feedback(status, value, etype, emsg, answer_type, wrong_value=verdict == "incorrect",
                                   choices=choices)
                if status is not None
                else "the program was not run"
            )  # fmt: skip
            failures.append(
                Failure(rid, pid, task_name, split_name, body, str(verdict), status, etype, feedback, int(rnd))
            )
        seen |= attempted
    failures.sort(key=lambda f: (f.problem_id, f.rationale_id))
    return failures
