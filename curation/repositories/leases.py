"""Batch leases: claiming a batch of a run for one generation task at a time (see BatchLease).

Times are the workers' clocks (UTC); leases last tens of seconds, far above the skew between
machines that share a database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.db.dialect import dialect_insert
from curation.models import BatchLease


def claim(session: Session, run_id: int, batch_key: str, holder: str, seconds: float) -> bool:
    """Take the batch if it is free, its lease ran out, or `holder` has it already."""
    now = utc_now()
    table = BatchLease.__table__
    insert = dialect_insert(session, table).values(  # type: ignore[arg-type]
        synthesis_run_id=run_id, batch_key=batch_key, holder=holder, expires_at=now + timedelta(seconds=seconds)
    )
    statement = insert.on_conflict_do_update(
        index_elements=["synthesis_run_id", "batch_key"],
        set_={"holder": insert.excluded.holder, "expires_at": insert.excluded.expires_at},
        where=or_(BatchLease.expires_at < now, BatchLease.holder == holder),
    ).returning(BatchLease.holder)
    return session.execute(statement).first() is not None


def take_over(session: Session, run_id: int, batch_key: str, dead_holder: str, holder: str, seconds: float) -> bool:
    """Take a batch from a holder known to be dead, if it still holds it."""
    result = session.execute(
        update(BatchLease)
        .where(
            BatchLease.synthesis_run_id == run_id,
            BatchLease.batch_key == batch_key,
            BatchLease.holder == dead_holder,
        )
        .values(holder=holder, expires_at=utc_now() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def current(session: Session, run_id: int, batch_key: str) -> tuple[str, datetime] | None:
    row = session.execute(
        select(BatchLease.holder, BatchLease.expires_at).where(
            BatchLease.synthesis_run_id == run_id, BatchLease.batch_key == batch_key
        )
    ).first()
    if row is None:
        return None
    holder, expires = row
    # SQLite hands back naive datetimes; every time written here is UTC.
    return holder, expires if expires.tzinfo else expires.replace(tzinfo=UTC)


def renew(session: Session, run_id: int, batch_key: str, holder: str, seconds: float) -> bool:
    """Extend `holder`'s lease; False if it no longer holds it (another task took the batch over)."""
    result = session.execute(
        update(BatchLease)
        .where(
            BatchLease.synthesis_run_id == run_id,
            BatchLease.batch_key == batch_key,
            BatchLease.holder == holder,
        )
        .values(expires_at=utc_now() + timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release(session: Session, run_id: int, batch_key: str, holder: str) -> None:
    session.execute(
        delete(BatchLease).where(
            BatchLease.synthesis_run_id == run_id, BatchLease.batch_key == batch_key, BatchLease.holder == holder
        )
    )


def live_batches(session: Session, run_id: int) -> dict[str, str]:
    """Batches whose leases have not run out, and their holders."""
    rows = session.execute(
        select(BatchLease.batch_key, BatchLease.holder).where(
            BatchLease.synthesis_run_id == run_id, BatchLease.expires_at >= utc_now()
        )
    )
    return {key: holder for key, holder in rows}
