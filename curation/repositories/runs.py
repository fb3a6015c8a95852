"""Synthesis runs and their generations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.db.dialect import insert_ignoring_conflicts
from curation.errors import NotFoundError
from curation.models import Generation, SynthesisRun


def get_run(session: Session, run_id: int) -> SynthesisRun:
    run = session.get(SynthesisRun, run_id)
    if run is None:
        raise NotFoundError(f"synthesis run {run_id} does not exist")
    return run


def find_run_by_source(
    session: Session, *, source: str, task_id: int, teacher_id: int, template_id: int
) -> SynthesisRun | None:
    return session.execute(
        select(SynthesisRun)
        .where(
            SynthesisRun.source == source,
            SynthesisRun.task_id == task_id,
            SynthesisRun.teacher_id == teacher_id,
            SynthesisRun.template_id == template_id,
        )
        .order_by(SynthesisRun.id)
        .limit(1)
    ).scalar_one_or_none()


def insert_generations(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """Store generations not yet stored under their (run, problem, sample_index); return how many were new."""
    if not rows:
        return 0
    statement = insert_ignoring_conflicts(
        session,
        Generation.__table__,  # type: ignore[arg-type]
        ["synthesis_run_id", "problem_id", "sample_index"],
    ).returning(Generation.id)
    return len(session.execute(statement, rows).all())
