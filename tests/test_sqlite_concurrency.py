"""Several processes writing one SQLite file at once: no "database is locked", nothing lost."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from curation.db.session import Database
from curation.ingestion.service import ingest_procedural

PROCESSES = 6
TRANSACTIONS = 25
PER_TRANSACTION = 20


def _writer(url: str, worker: int) -> str | None:
    """Each transaction reads (task, split, existing keys) and then writes: the pattern that makes a
    deferred SQLite transaction fail at once when another process holds the write lock."""
    database = Database(url)
    try:
        for n in range(TRANSACTIONS):
            with database.transaction() as session:
                offset = (worker * TRANSACTIONS + n) * PER_TRANSACTION
                ingest_procedural(session, count=PER_TRANSACTION, seed=7, offset=offset, split="train")
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    finally:
        database.dispose()
    return None


def test_pragmas(sqlite_db: Database) -> None:
    with sqlite_db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert (connection.execute(text("PRAGMA busy_timeout")).scalar() or 0) >= 10_000


@pytest.mark.slow
def test_concurrent_writers_never_see_database_is_locked(sqlite_db: Database) -> None:
    url = sqlite_db.url
    sqlite_db.dispose()
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        errors = pool.starmap(_writer, [(url, w) for w in range(PROCESSES)])
    assert errors == [None] * PROCESSES
    with sqlite_db.read() as session:
        stored = session.execute(text("SELECT COUNT(*), COUNT(DISTINCT source_ref) FROM problem")).one()
    expected = PROCESSES * TRANSACTIONS * PER_TRANSACTION
    assert tuple(stored) == (expected, expected)


def _deferred_writer(path: str, worker: int) -> int:
    """The same read-then-write transaction, begun DEFERRED (plain BEGIN) instead of IMMEDIATE.

    (The driver's legacy mode would not even put the read inside the transaction, trading this
    error for unisolated reads.)
    """
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    failures = 0
    for n in range(TRANSACTIONS * 2):
        try:
            connection.execute("BEGIN")
            connection.execute("SELECT COUNT(*) FROM model").fetchone()
            connection.execute(
                "INSERT INTO model (role, backend, name, revision, created_at) VALUES ('teacher', 'x', ?, '', '')",
                (f"{worker}-{n}",),
            )
            connection.execute("COMMIT")
        except sqlite3.OperationalError as error:
            assert "locked" in str(error)
            failures += 1
            connection.execute("ROLLBACK")
    connection.close()
    return failures


@pytest.mark.slow
def test_control_deferred_transactions_do_fail(sqlite_db: Database) -> None:
    """Shows the test above can fail: without BEGIN IMMEDIATE the same contention loses writes."""
    path = str(Path(sqlite_db.engine.url.database or ""))
    sqlite_db.dispose()
    with multiprocessing.get_context("spawn").Pool(PROCESSES) as pool:
        failures = pool.starmap(_deferred_writer, [(path, w) for w in range(PROCESSES)])
    assert sum(failures) > 0
