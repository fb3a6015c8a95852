"""`curation sql` cannot change data, whatever it is given, on either database."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import Problem
from curation.sql_console import run_sql


def _problems(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count(Problem.id))).scalar_one())


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM problem",
        "DELETE FROM problem; COMMIT",
        "COMMIT; DELETE FROM problem",
        "SELECT 1; DELETE FROM problem",
        "UPDATE problem SET question = 'x'",
        "WITH gone AS (DELETE FROM problem RETURNING id) SELECT COUNT(*) FROM gone",
        "DROP TABLE problem",
        "CREATE TABLE scratch (x INTEGER)",
    ],
)
def test_statements_that_would_write_are_refused(db: Database, statement: str) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=5, seed=1)
    with db.read() as session, pytest.raises(CurationError, match="query failed"):
        run_sql(session, statement)
    assert _problems(db) == 5
    with db.transaction() as session:  # the pooled connection is writable again for everyone else
        ingest_procedural(session, count=7, seed=1)
    assert _problems(db) == 7


def test_queries_still_answer(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=5, seed=1)
    with db.read() as session:
        result = run_sql(
            session, "SELECT split, COUNT(*) AS n, '100%' AS literal FROM problem GROUP BY split", limit=1
        )
        empty = run_sql(session, "COMMIT")
    assert result.columns == ["split", "n", "literal"] and result.rows[0][1:] == (5, "100%")
    assert empty.rows == [] and _problems(db) == 5
