"""`curation sql`: run a query against the system of record and return rows for display.

Queries run in a transaction that is always rolled back, so the console cannot change data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import inspect, text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from curation.errors import CurationError


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def run_sql(session: Session, statement: str, *, limit: int | None = 1_000) -> QueryResult:
    try:
        result = cast(CursorResult[Any], session.execute(text(statement)))
    except (DBAPIError, StatementError) as error:
        message = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise CurationError(f"query failed: {message}") from None
    if not result.returns_rows:
        return QueryResult([], [], False)
    columns = list(result.keys())
    if limit is None:
        return QueryResult(columns, [tuple(r) for r in result.all()], False)
    rows = [tuple(r) for r in result.fetchmany(limit + 1)]
    return QueryResult(columns, rows[:limit], truncated=len(rows) > limit)


def view_names(session: Session) -> list[str]:
    return sorted(inspect(session.connection()).get_view_names())
