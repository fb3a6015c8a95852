"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def dialect_insert(session: Session, table: Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that can take ON CONFLICT clauses (both dialects spell them the same way)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignoring_conflicts(
    session: Session, table: Table, conflict_columns: Sequence[str]
) -> sqlite.Insert | postgresql.Insert:
    """INSERT ... ON CONFLICT (conflict_columns) DO NOTHING: the idempotent write behind re-runs."""
    return dialect_insert(session, table).on_conflict_do_nothing(index_elements=list(conflict_columns))
