"""Rationales to parse, rationales awaiting a verifier, their executions and labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.orm import Session

from curation.answers.verdict import ANSWER_VERIFIER, PROGRAM_VERIFIER
from curation.db.bulk import insert_ignoring_conflicts_bulk
from curation.models import (
    AnswerType,
    Execution,
    ExecutionStatus,
    Generation,
    GenerationStatus,
    Label,
    Problem,
    PromptTemplate,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    SynthesisRun,
    Task,
    TemplateStyle,
)


@dataclass(frozen=True)
class UnparsedGeneration:
    generation_id: int
    problem_id: int
    sample_index: int
    output: str
    teacher_id: int
    style: TemplateStyle


def unparsed_generations(session: Session, run_id: int | None, *, limit: int) -> list[UnparsedGeneration]:
    """Complete generations of a run (of every run, for None) that have no rationale yet.

    Complete: successful, and for a two-stage template with its second stage stored (a rationale
    made before it arrives would be labelled without the stage-2 answer). Imported runs' templates
    are single-stage, whatever their style: a zero-shot-CoT completion holds both stages.
    """
    query = (
        select(
            Generation.id,
            Generation.problem_id,
            Generation.sample_index,
            Generation.output,
            SynthesisRun.teacher_id,
            PromptTemplate.style,
        )
        .join(SynthesisRun, SynthesisRun.id == Generation.synthesis_run_id)
        .join(PromptTemplate, PromptTemplate.id == SynthesisRun.template_id)
        .outerjoin(Rationale, Rationale.generation_id == Generation.id)
        .where(
            Generation.status == GenerationStatus.ok,
            or_(PromptTemplate.answer_text.is_(None), Generation.answer_output.is_not(None)),
            Rationale.id.is_(None),
            # A reference run writes its rationales with its generations; its source text is no output to parse.
            PromptTemplate.style != TemplateStyle.reference,
            # An evaluation stores its outputs' rationales with their generations (trainer/evaluation.py).
            PromptTemplate.style != TemplateStyle.student,
        )
        .order_by(Generation.id)
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(Generation.synthesis_run_id == run_id)
    return [UnparsedGeneration(g, p, i, o or "", t, s) for g, p, i, o, t, s in session.execute(query)]


VERIFIER_BY_KIND = {RationaleKind.cot: ANSWER_VERIFIER, RationaleKind.program: PROGRAM_VERIFIER}

RATIONALE_COLUMNS = ("problem_id", "generation_id", "model_id", "sample_index", "kind", "origin", "body")


def insert_rationales(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    """Rows in RATIONALE_COLUMNS order; one rationale per generation, whoever gets there first."""
    return insert_ignoring_conflicts_bulk(
        session,
        Rationale.__table__,  # type: ignore[arg-type]
        RATIONALE_COLUMNS,
        rows,
        ["generation_id"],
    )


@dataclass(frozen=True)
class PendingRationale:
    """A rationale with everything its verifier needs (and its run, for the run's counters)."""

    rationale_id: int
    kind: RationaleKind
    origin: RationaleOrigin
    body: str
    answer_output: str | None
    gold_answer: str
    answer_type: AnswerType
    choices: list[dict[str, str]] | None
    choice_order: list[str] | None  # the options' order in the generation's prompt (None: stored order)
    synthesis_run_id: int | None


def pending_rationales(
    session: Session,
    *,
    verifier_version: str,
    verifiers: dict[RationaleKind, str],
    run_id: int | None = None,
    rationale_ids: Sequence[int] | None = None,
    after_id: int = 0,
    limit: int = 500,
) -> list[PendingRationale]:
    """Rationales (by id, after `after_id`) without a label from their kind's verifier at this version."""
    query = (
        select(
            Rationale.id,
            Rationale.kind,
            Rationale.origin,
            Rationale.body,
            Generation.answer_output,
            Problem.gold_answer,
            Task.answer_type,
            Problem.choices,
            Generation.choice_order,
            Generation.synthesis_run_id,
        )
        .join(Problem, Problem.id == Rationale.problem_id)
        .join(Task, Task.id == Problem.task_id)
        .outerjoin(Generation, Generation.id == Rationale.generation_id)
        .where(Rationale.id > after_id)
        .where(_unlabelled(verifiers, verifier_version))
        .order_by(Rationale.id)
        .limit(limit)
    )
    if run_id is not None:
        query = query.where(Generation.synthesis_run_id == run_id)
    if rationale_ids is not None:
        query = query.where(Rationale.id.in_(list(rationale_ids)))
    return [PendingRationale(*row) for row in session.execute(query)]


def rationale_ids_for_generations(session: Session, generation_ids: Sequence[int]) -> list[tuple[int, RationaleKind]]:
    rows = session.execute(
        select(Rationale.id, Rationale.kind)
        .where(Rationale.generation_id.in_(list(generation_ids)))
        .order_by(Rationale.id)
    )
    return [(rid, kind) for rid, kind in rows]


def unfinished_rationales(
    session: Session, run_id: int, problem_ids: Sequence[int], *, limits_hash: str, verifier_version: str
) -> tuple[list[int], list[int]]:
    """Rationales of a run's problems still owed work: (programs without an execution under these
    limits, rationales without a label at this version). Used to resend lost follow-up tasks."""
    rows = session.execute(
        select(Rationale.id, Rationale.kind)
        .join(Generation, Generation.id == Rationale.generation_id)
        .where(Generation.synthesis_run_id == run_id, Rationale.problem_id.in_(list(problem_ids)))
        .where(_unlabelled(VERIFIER_BY_KIND, verifier_version))
        .order_by(Rationale.id)
    ).all()
    programs = [rid for rid, kind in rows if kind is RationaleKind.program]
    executed = set(executions_for(session, programs, limits_hash)) if programs else set()
    return [rid for rid in programs if rid not in executed], [rid for rid, _ in rows]


def _unlabelled(verifiers: dict[RationaleKind, str], version: str) -> Any:
    """No label from the rationale's own verifier (by kind) at this version."""
    return or_(*(and_(Rationale.kind == kind, ~_has_label(v, version)) for kind, v in verifiers.items()))


def _has_label(verifier: str, version: str) -> Any:
    return (
        select(Label.id)
        .where(Label.rationale_id == Rationale.id, Label.verifier == verifier, Label.verifier_version == version)
        .exists()
    )


EXECUTION_COLUMNS = (
    "rationale_id", "status", "value", "value_type", "error_type", "error_message", "stdout", "stderr",
    "output_truncated", "duration_ms", "limits", "limits_hash",
)  # fmt: skip


def insert_executions(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    return insert_ignoring_conflicts_bulk(
        session,
        Execution.__table__,  # type: ignore[arg-type]
        EXECUTION_COLUMNS,
        rows,
        ["rationale_id", "limits_hash"],
    )


@dataclass(frozen=True)
class StoredExecution:
    execution_id: int
    status: ExecutionStatus
    value: str | None
    error_type: str | None


def executions_for(session: Session, rationale_ids: Sequence[int], limits_hash: str) -> dict[int, StoredExecution]:
    rows = session.execute(
        select(Execution.rationale_id, Execution.id, Execution.status, Execution.value, Execution.error_type).where(
            Execution.rationale_id.in_(list(rationale_ids)), Execution.limits_hash == limits_hash
        )
    )
    return {rid: StoredExecution(eid, status, value, error) for rid, eid, status, value, error in rows}


LABEL_COLUMNS = ("rationale_id", "execution_id", "verifier", "verifier_version", "verdict", "score", "details")


def insert_labels(session: Session, rows: Sequence[Sequence[Any]]) -> int:
    return insert_ignoring_conflicts_bulk(
        session,
        Label.__table__,  # type: ignore[arg-type]
        LABEL_COLUMNS,
        rows,
        ["rationale_id", "verifier", "verifier_version"],
    )


def set_answers(session: Session, answers: dict[int, str | None]) -> None:
    """Record each rationale's answer as its latest verification extracted it."""
    if answers:  # one executemany, without the ORM's per-row bookkeeping
        table = Rationale.__table__
        session.connection().execute(
            update(table).where(table.c.id == bindparam("rid")).values(answer=bindparam("answer")),  # type: ignore[arg-type]
            [{"rid": rid, "answer": answer} for rid, answer in answers.items()],
        )
