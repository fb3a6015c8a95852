"""The headline counts behind `curation stats`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curation.models import (
    Evaluation,
    Execution,
    Generation,
    Label,
    Rationale,
    Snapshot,
    SynthesisRun,
    TrainingRun,
)
from curation.repositories import problems as problem_repo


@dataclass
class Stats:
    problems: list[tuple[str, str, str, int]] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)
    generations: dict[str, int] = field(default_factory=dict)
    rationales: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    snapshots: int = 0
    training_runs: int = 0
    evaluations: int = 0

    @property
    def total_problems(self) -> int:
        return sum(count for *_, count in self.problems)


def _grouped(session: Session, column: object) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column).order_by(column))  # type: ignore[call-overload]
    return {str(key): count for key, count in rows}


def collect_stats(session: Session) -> Stats:
    return Stats(
        problems=problem_repo.count_by_task_and_split(session),
        runs=_grouped(session, SynthesisRun.status),
        generations=_grouped(session, Generation.status),
        rationales=_grouped(session, Rationale.origin),
        executions=_grouped(session, Execution.status),
        labels=_grouped(session, Label.verdict),
        snapshots=session.execute(select(func.count(Snapshot.id))).scalar_one(),
        training_runs=session.execute(select(func.count(TrainingRun.id))).scalar_one(),
        evaluations=session.execute(select(func.count(Evaluation.id))).scalar_one(),
    )
