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


def test_control_deferred_transactions_do_fail(sqlite_db: Database) -> None:
    """Shows the test above can fail: without BEGIN IMMEDIATE the same read-then-write transaction
    loses its write to another writer. The interleaving is made by hand (two connections, as two
    processes would hold), so it happens every time rather than when processes happen to overlap:
    A reads inside a deferred transaction, B commits a write, and A's write then fails at once with
    "database is locked" (SQLITE_BUSY_SNAPSHOT: no busy timeout helps, A's snapshot is stale).

    (The driver's legacy mode would not even put the read inside the transaction, trading this
    error for unisolated reads.)
    """
    path = str(Path(sqlite_db.engine.url.database or ""))
    sqlite_db.dispose()
    insert = "INSERT INTO model (role, backend, name, revision, created_at) VALUES ('teacher', 'x', ?, '', '')"
    a = sqlite3.connect(path, timeout=30, isolation_level=None)
    b = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        assert a.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        a.execute("BEGIN")
        before = a.execute("SELECT COUNT(*) FROM model").fetchone()[0]
        b.execute("BEGIN")
        b.execute(insert, ("b",))
        b.execute("COMMIT")
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            a.execute(insert, ("a",))
        a.execute("ROLLBACK")
        # With BEGIN IMMEDIATE A takes the write lock before reading, so its read cannot go stale and
        # its write goes in; another writer is stopped at its BEGIN, before it has read anything,
        # where a busy timeout makes it wait (here none, to see it without waiting).
        a.execute("BEGIN IMMEDIATE")
        assert a.execute("SELECT COUNT(*) FROM model").fetchone()[0] == before + 1
        impatient = sqlite3.connect(path, timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            impatient.execute("BEGIN IMMEDIATE")
        impatient.close()
        a.execute(insert, ("a",))
        a.execute("COMMIT")
        names = {row[0] for row in b.execute("SELECT name FROM model WHERE backend = 'x'")}
        assert names == {"a", "b"}
    finally:
        a.close()
        b.close()
