"""Training leases: which process trains a training run now (see TrainingRun.lease_holder).

Each claim is one UPDATE whose WHERE says when it may be taken, so two processes claiming at once
cannot both win: SQLite runs one writer at a time, and PostgreSQL re-checks the WHERE of the
second UPDATE against the row the first one committed. Times are the workers' clocks (UTC), as
for batch leases (curation/repositories/leases.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.models import TrainingRun, TrainingStatus


def _changed(session: Session, statement: object) -> bool:
    result = session.execute(statement.execution_options(synchronize_session=False))  # type: ignore[attr-defined]
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claim(session: Session, run_id: int, holder: str, seconds: float) -> bool:
    """Take the run if it is not completed and nobody holds it, its lease ran out, or `holder` has it."""
    now = utc_now()
    return _changed(
        session,
        update(TrainingRun)
        .where(
            TrainingRun.id == run_id,
            TrainingRun.status != TrainingStatus.completed,
            or_(
                TrainingRun.lease_holder.is_(None),
                TrainingRun.lease_expires_at.is_(None),
                TrainingRun.lease_expires_at < now,
                TrainingRun.lease_holder == holder,
            ),
        )
        .values(lease_holder=holder, lease_expires_at=now + timedelta(seconds=seconds)),
    )


def take_over(session: Session, run_id: int, dead_holder: str, holder: str, seconds: float) -> bool:
    """Take the run from a holder known to be dead, if it still holds it."""
    return _changed(
        session,
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.lease_holder == dead_holder)
        .values(lease_holder=holder, lease_expires_at=utc_now() + timedelta(seconds=seconds)),
    )


def renew(session: Session, run_id: int, holder: str, seconds: float) -> bool:
    """Extend `holder`'s lease; False if it no longer holds it."""
    return _changed(
        session,
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.lease_holder == holder)
        .values(lease_expires_at=utc_now() + timedelta(seconds=seconds)),
    )


def release(session: Session, run_id: int, holder: str) -> bool:
    return _changed(
        session,
        update(TrainingRun)
        .where(TrainingRun.id == run_id, TrainingRun.lease_holder == holder)
        .values(lease_holder=None, lease_expires_at=None),
    )


def current(session: Session, run_id: int) -> tuple[str, datetime] | None:
    row = session.execute(
        select(TrainingRun.lease_holder, TrainingRun.lease_expires_at).where(TrainingRun.id == run_id)
    ).first()
    if row is None:
        return None
    holder, expires = row
    if holder is None or expires is None:
        return None
    # SQLite hands back naive datetimes; every time written here is UTC.
    return holder, expires if expires.tzinfo else expires.replace(tzinfo=UTC)
