"""`curation sql`: run a query against the system of record and return rows for display.

The console cannot change data, and that is enforced by the databases, not by inspecting the SQL:
- PostgreSQL: the transaction is READ ONLY, and the statement is sent as a prepared statement,
  which holds exactly one command (so `...; COMMIT; DELETE ...` is refused rather than run).
- SQLite: `PRAGMA query_only` is on while the statement runs, and the driver runs one statement
  per call.
Either way the transaction is rolled back afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, CursorResult
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from curation.errors import CurationError


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


def _collect(columns: list[str], fetch_many: Any, fetch_all: Any, limit: int | None) -> QueryResult:
    if limit is None:
        return QueryResult(columns, [tuple(r) for r in fetch_all()], False)
    rows = [tuple(r) for r in fetch_many(limit + 1)]
    return QueryResult(columns, rows[:limit], truncated=len(rows) > limit)


def _run_postgresql(connection: Connection, statement: str, limit: int | None) -> QueryResult:
    import psycopg

    connection.exec_driver_sql("SET TRANSACTION READ ONLY")
    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with driver.cursor() as cursor:
        try:
            cursor.execute(statement.encode(), prepare=True)
        except psycopg.Error as error:
            raise CurationError(f"query failed: {_first_line(error)}") from None
        description: Sequence[Any] | None = cursor.description
        if description is None:
            return QueryResult([], [], False)
        return _collect([c.name for c in description], cursor.fetchmany, cursor.fetchall, limit)


def _run_sqlite(connection: Connection, statement: str, limit: int | None) -> QueryResult:
    connection.exec_driver_sql("PRAGMA query_only = ON")
    try:
        try:
            result = cast(CursorResult[Any], connection.execute(text(statement)))
        except (DBAPIError, StatementError) as error:
            raise CurationError(f"query failed: {_first_line(error)}") from None
        if not result.returns_rows:
            return QueryResult([], [], False)
        return _collect(list(result.keys()), result.fetchmany, result.all, limit)
    finally:
        connection.exec_driver_sql("PRAGMA query_only = OFF")  # the pooled connection writes again


def run_sql(session: Session, statement: str, *, limit: int | None = 1_000) -> QueryResult:
    """Run one read-only statement (see the module's docstring); at most `limit` rows."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return _run_postgresql(connection, statement, limit)
    return _run_sqlite(connection, statement, limit)


def view_names(session: Session) -> list[str]:
    return sorted(inspect(session.connection()).get_view_names())
