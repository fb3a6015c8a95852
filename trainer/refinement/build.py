"""Repair examples: a failure (question, faulty program, feedback) and a verified correct program
for the same problem, stored as a `refinement` rationale whose parent is the faulty one.

The corrected program is a verified rationale of the problem: a teacher's or a reference, a
program, whose current label is `correct` (the shortest, then the oldest, so the choice is
stable). No new teacher call is made here. The stored refinement is then verified again by the
same verifiers (the sandbox), so a repair is `correct` by its own label, not by its source's.
Building twice adds nothing: a failure already repaired for training keeps its one repair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text

from curation.answers.verdict import VERIFIER_VERSION
from curation.db.session import Database
from curation.models import Rationale, RationaleKind, RationaleOrigin
from trainer.refinement.collect import Failure

_VERIFIED = text(
    """
SELECT ra.problem_id, ra.id, ra.body
FROM rationale ra
JOIN current_label cl ON cl.rationale_id = ra.id
WHERE ra.problem_id IN :problem_ids AND ra.kind = 'program' AND ra.origin IN ('teacher', 'reference')
  AND cl.verdict = 'correct'
ORDER BY ra.problem_id, LENGTH(ra.body), ra.id"""
)


@dataclass(frozen=True)
class BuildReport:
    failures: int
    repaired: list[int]  # refinement rationale ids (new and found again), in failure order
    created: int
    without_verified: list[int]  # problem ids with no verified program to learn from


def _verified_programs(db: Database, problem_ids: Sequence[int]) -> dict[int, str]:
    from sqlalchemy import bindparam

    found: dict[int, str] = {}
    query = _VERIFIED.bindparams(bindparam("problem_ids", expanding=True))
    with db.read() as session:
        for start in range(0, len(problem_ids), 1_000):
            for pid, _rid, body in session.execute(query, {"problem_ids": list(problem_ids[start : start + 1_000])}):
                found.setdefault(int(pid), body)
    return found


def build_repairs(
    db: Database, failures: Sequence[Failure], *, sandbox_factory: Callable[[], Any] | None = None
) -> BuildReport:
    verified = _verified_programs(db, sorted({f.problem_id for f in failures}))
    repaired: list[int] = []
    missing: list[int] = []
    created = 0
    with db.transaction() as session:
        parents = [f.rationale_id for f in failures]
        existing: dict[int, int] = {}
        for start in range(0, len(parents), 1_000):
            found = session.execute(
                select(Rationale.parent_id, Rationale.id).where(
                    Rationale.parent_id.in_(parents[start : start + 1_000]),
                    Rationale.origin == RationaleOrigin.refinement,
                    Rationale.evaluation_id.is_(None),
                )
            )
            existing.update((int(parent), int(child)) for parent, child in found if parent is not None)
        for failure in failures:
            if failure.rationale_id in existing:
                repaired.append(existing[failure.rationale_id])
                continue
            body = verified.get(failure.problem_id)
            if body is None:
                missing.append(failure.problem_id)
                continue
            row = Rationale(
                problem_id=failure.problem_id,
                parent_id=failure.rationale_id,
                sample_index=0,
                kind=RationaleKind.program,
                origin=RationaleOrigin.refinement,
                body=body,
                feedback=failure.feedback,
                refinement_round=failure.round + 1,
            )
            session.add(row)
            session.flush()
            repaired.append(row.id)
            created += 1
    if repaired:
        verify_programs(db, repaired, sandbox_factory)
    return BuildReport(len(failures), repaired, created, sorted(set(missing)))


def verify_programs(db: Database, rationale_ids: Sequence[int], sandbox_factory: Callable[[], Any] | None) -> None:
    """Execute and label programs with the verifiers every rationale goes through."""
    from workers.sandbox import Limits, Sandbox
    from workers.verification import check_batch

    sandbox = sandbox_factory() if sandbox_factory is not None else Sandbox()
    try:
        for start in range(0, len(rationale_ids), 500):
            check_batch(db, sandbox, list(rationale_ids[start : start + 500]), Limits(), VERIFIER_VERSION)
    finally:
        if sandbox_factory is None:
            sandbox.close()
