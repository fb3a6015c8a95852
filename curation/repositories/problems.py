"""Tasks, splits and problems."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curation.db.bulk import insert_ignoring_conflicts_bulk
from curation.db.dialect import insert_ignoring_conflicts
from curation.errors import ConflictError
from curation.models import AnswerType, Problem, Split, SplitPurpose, Task


def get_task(session: Session, name: str) -> Task | None:
    return session.execute(select(Task).where(Task.name == name)).scalar_one_or_none()


def ensure_task(session: Session, name: str, answer_type: AnswerType, description: str | None) -> Task:
    """The task row, created if missing. Race-safe: concurrent creators converge on one row."""
    session.execute(
        insert_ignoring_conflicts(session, Task.__table__, ["name"]),  # type: ignore[arg-type]
        {"name": name, "answer_type": answer_type.value, "description": description},
    )
    task = get_task(session, name)
    assert task is not None
    if task.answer_type is not answer_type:
        raise ConflictError(f"task {name} is stored with {task.answer_type} answers, not {answer_type}")
    return task


def ensure_split(session: Session, task: Task, name: str, purpose: SplitPurpose) -> Split:
    session.execute(
        insert_ignoring_conflicts(session, Split.__table__, ["task_id", "name"]),  # type: ignore[arg-type]
        {"task_id": task.id, "name": name, "purpose": purpose.value},
    )
    split = session.execute(select(Split).where(Split.task_id == task.id, Split.name == name)).scalar_one()
    if split.purpose is not purpose:
        raise ConflictError(
            f"split {name} of {task.name} is stored as {split.purpose}, not {purpose}; a split's purpose "
            "never changes, since snapshots were built on it"
        )
    return split


def insert_problems(session: Session, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Insert the rows not yet stored under their (task, split, source_ref); return how many were new."""
    return insert_ignoring_conflicts_bulk(
        session,
        Problem.__table__,  # type: ignore[arg-type]
        columns,
        rows,
        ["task_id", "split", "source_ref"],
    )


def stored_problem_keys(
    session: Session, task_id: int, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], tuple[int, str, str]]:
    """(split, source_ref) -> (id, content_hash, gold_answer) for those keys that exist."""
    refs_by_split: dict[str, list[str]] = defaultdict(list)
    for split, ref in keys:
        refs_by_split[split].append(ref)
    found: dict[tuple[str, str], tuple[int, str, str]] = {}
    for split, refs in refs_by_split.items():
        rows = session.execute(
            select(Problem.source_ref, Problem.id, Problem.content_hash, Problem.gold_answer).where(
                Problem.task_id == task_id, Problem.split == split, Problem.source_ref.in_(refs)
            )
        )
        for ref, problem_id, content_hash, gold in rows:
            found[(split, ref)] = (problem_id, content_hash, gold)
    return found


def count_by_task_and_split(session: Session) -> list[tuple[str, str, str, int]]:
    """(task, split, purpose, problems) for every declared split."""
    rows = session.execute(
        select(Task.name, Split.name, Split.purpose, func.count(Problem.id))
        .join(Split, Split.task_id == Task.id)
        .outerjoin(Problem, (Problem.task_id == Task.id) & (Problem.split == Split.name))
        .group_by(Task.name, Split.name, Split.purpose)
        .order_by(Task.name, Split.name)
    )
    return [(task, split, str(purpose), count) for task, split, purpose, count in rows]
