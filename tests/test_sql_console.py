"""`curation sql` cannot change data, whatever it is given, on either database; on PostgreSQL it
never runs a statement as a superuser."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from curation import sql_console
from curation.db.session import Database
from curation.errors import CurationError
from curation.ingestion.service import ingest_procedural
from curation.models import Problem
from curation.sql_console import READER_ROLE, run_sql
from tests.conftest import ROOT, _truncate_all


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
    with pytest.raises(CurationError, match="query failed"):
        run_sql(db, statement)
    assert _problems(db) == 5
    with db.transaction() as session:  # the pooled connection is writable again for everyone else
        ingest_procedural(session, count=7, seed=1)
    assert _problems(db) == 7


def test_queries_still_answer(db: Database) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=5, seed=1)
    result = run_sql(db, "SELECT split, COUNT(*) AS n, '100%' AS literal FROM problem GROUP BY split", limit=1)
    empty = run_sql(db, "COMMIT")
    assert result.columns == ["split", "n", "literal"] and result.rows[0][1:] == (5, "100%")
    assert empty.rows == [] and _problems(db) == 5


def test_statements_go_to_the_driver_as_written(db: Database) -> None:
    """` :word` inside a string literal is text, not a bind parameter (nor is `%(x)s` or `?`)."""
    result = run_sql(db, "SELECT 'at :noon, 100%(x)s ?' AS said, ':a' || ' :b' AS joined")
    assert result.rows == [("at :noon, 100%(x)s ?", ":a :b")]


@pytest.mark.parametrize(
    "statement",
    [
        "ATTACH DATABASE '{target}' AS other",
        "VACUUM INTO '{target}'",
        "DETACH main",
        "PRAGMA query_only = 0",
        "PRAGMA foreign_keys = OFF",
        "PRAGMA locking_mode = EXCLUSIVE",
        "PRAGMA wal_checkpoint(TRUNCATE)",
        "PRAGMA main.user_version = 7",
        "SELECT load_extension('{target}')",
    ],
)
def test_sqlite_refuses_what_query_only_lets_through(sqlite_db: Database, tmp_path: Path, statement: str) -> None:
    """query_only stops writes to the database, not ATTACH or VACUUM INTO (each creates a file)
    nor pragmas that would stay set on the pooled connection: SQLite's authorizer refuses them."""
    target = tmp_path / "elsewhere.db"
    # (VACUUM INTO is refused first for running inside the console's transaction)
    with pytest.raises(CurationError, match=r"query failed: (not authorized|cannot VACUUM from within a transaction)"):
        run_sql(sqlite_db, statement.format(target=target))
    assert not target.exists()
    with sqlite_db.read() as session:  # the pooled connection is as it was, and writes again
        settings = session.connection().exec_driver_sql("PRAGMA foreign_keys").scalar_one()
        mode = session.connection().exec_driver_sql("PRAGMA locking_mode").scalar_one()
    assert (settings, mode, run_sql(sqlite_db, "PRAGMA user_version").rows) == (1, "normal", [(0,)])
    with sqlite_db.transaction() as session:
        ingest_procedural(session, count=2, seed=1)
    assert _problems(sqlite_db) == 2


def test_sqlite_pragmas_that_report_still_answer(sqlite_db: Database) -> None:
    columns = run_sql(sqlite_db, "PRAGMA table_info(problem)").rows
    indexes = run_sql(sqlite_db, "PRAGMA main.index_list(problem)").rows
    named = run_sql(sqlite_db, "SELECT name FROM pragma_table_info('problem') WHERE name = 'question'").rows
    assert "question" in [row[1] for row in columns] and indexes and named == [("question",)]


@pytest.fixture
def pg(postgres_migrated: str) -> Iterator[Database]:
    """The PostgreSQL test database, emptied: what a superuser could do there."""
    database = Database(postgres_migrated)
    _truncate_all(database)
    yield database
    database.dispose()


def _is_superuser(db: Database) -> bool:
    with db.read() as session:
        return bool(session.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar())


@pytest.mark.postgres
def test_a_superuser_url_never_runs_a_shell_command(pg: Database) -> None:
    """As the README's and CI's default user (a superuser), `COPY ... TO PROGRAM` inside a READ
    ONLY transaction runs the program (the server does it, as its own OS user, here in /tmp): the
    console runs the statement as curation_reader instead, which may not."""
    assert _is_superuser(pg), "the test server's default user is a superuser, as in CI"
    marker = Path(f"/tmp/curation-test-{uuid.uuid4().hex}")
    superuser = "(SELECT rolname FROM pg_roles WHERE rolsuper ORDER BY oid LIMIT 1)"
    try:
        for statement in (
            "COPY (SELECT 1) TO PROGRAM 'true'",
            f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'",
            f"SELECT set_config('role', {superuser}, false), lo_export(1, '{marker}')",
            "SELECT pg_read_file('/etc/hostname')",
        ):
            with pytest.raises(CurationError, match="query failed"):
                run_sql(pg, statement)
        assert not marker.exists()
        assert run_sql(pg, "SELECT current_user").rows == [(READER_ROLE,)]
    finally:
        marker.unlink(missing_ok=True)


_HOSTILE = [
    ("SELECT lo_import('/etc/hostname')", "permission denied for function lo_import"),
    ("CREATE TEMP TABLE scratch (x INTEGER)", "cannot execute CREATE TABLE in a read-only transaction"),
    ("SET ROLE {superuser}", "permission denied to set role"),
    ("SET SESSION AUTHORIZATION {superuser}", "permission denied to set session authorization"),
    ("SELECT set_config('role', '{superuser}', false)", "permission denied to set role"),
    ("SELECT set_config('transaction_read_only', 'off', false)", "read-write mode must be set before any query"),
    ("DO $$ BEGIN DELETE FROM problem; END $$", "cannot execute DELETE in a read-only transaction"),
    ("DO $$ BEGIN COMMIT; DELETE FROM problem; END $$", "invalid transaction termination"),
    ("CALL curation_test_wipe()", "cannot execute DELETE in a read-only transaction"),
    ("SELECT curation_test_wipe_as_owner()", "cannot execute DELETE in a read-only transaction"),
    ("SELECT nextval(pg_get_serial_sequence('problem', 'id'))", "permission denied for sequence"),
    ("EXECUTE curation_test_prepared", "prepared statement .* does not exist"),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid()", "must be"),
    ("LOCK TABLE problem IN ACCESS EXCLUSIVE MODE", "permission denied for table problem"),
]


@pytest.mark.postgres
@pytest.mark.parametrize(("statement", "refusal"), _HOSTILE)
def test_hostile_statements_as_the_default_user_change_nothing(pg: Database, statement: str, refusal: str) -> None:
    """A superuser URL: each is refused, whether the reader lacks the privilege, the READ ONLY
    transaction stops it, or the session it would need is not the console's."""
    with pg.transaction() as session:
        ingest_procedural(session, count=4, seed=1)
        superuser = session.execute(text("SELECT current_user")).scalar_one()
        session.execute(text("CREATE PROCEDURE curation_test_wipe() LANGUAGE sql AS 'DELETE FROM problem'"))
        session.execute(
            text(
                "CREATE FUNCTION curation_test_wipe_as_owner() RETURNS integer LANGUAGE plpgsql SECURITY DEFINER "
                "AS 'BEGIN DELETE FROM problem; RETURN 1; END'"
            )
        )
    try:
        with pytest.raises(CurationError, match=f"query failed: .*{refusal}"):
            run_sql(pg, statement.format(superuser=superuser))
        assert _problems(pg) == 4
    finally:
        with pg.transaction() as session:
            session.execute(text("DROP PROCEDURE curation_test_wipe()"))
            session.execute(text("DROP FUNCTION curation_test_wipe_as_owner()"))


@pytest.mark.postgres
def test_a_superuser_is_refused_when_no_read_only_role_can_be_had(
    pg: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_console, "READER_ROLE", "curation_no_such_role")
    with pytest.raises(CurationError, match=r"will not run statements as the database URL's role .* is a superuser"):
        run_sql(pg, "SELECT 1")


@pytest.mark.postgres
def test_sql_url_must_name_a_role_that_can_only_read(pg: Database) -> None:
    with pytest.raises(CurationError, match=r"CURATION_SQL_URL: role .* is a superuser"):
        run_sql(pg, "SELECT 1", sql_url=pg.url)
    reader = make_url(pg.url).set(username=READER_ROLE).render_as_string(hide_password=False)
    with pg.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
    assert run_sql(pg, "SELECT COUNT(*) FROM problem", sql_url=reader).rows == [(3,)]


@pytest.fixture
def app_role(pg: Database) -> Iterator[Database]:
    """The database as an application role: no superuser, but it may write every table."""
    role = f"curation_test_app_{uuid.uuid4().hex[:12]}"
    with pg.transaction() as session:
        session.execute(text(f"CREATE ROLE {role} LOGIN"))
        session.execute(text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"))
        session.execute(text(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}"))
    database = Database(make_url(pg.url).set(username=role).render_as_string(hide_password=False))
    try:
        yield database
    finally:
        database.dispose()
        with pg.transaction() as session:
            session.execute(text(f"DROP OWNED BY {role}"))
            session.execute(text(f"DROP ROLE {role}"))


@pytest.mark.postgres
def test_an_application_role_that_can_write_gives_way_to_the_reader(pg: Database, app_role: Database) -> None:
    """Inside its READ ONLY transaction an application role changes no row, but it may still end
    its own sessions (every worker's connection) and lock its tables: the reader runs it instead."""
    with app_role.read() as session:  # one of the application's sessions, e.g. a worker's
        worker_pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert run_sql(app_role, "SELECT current_user").rows == [(READER_ROLE,)]
        with pytest.raises(CurationError, match="query failed: must be a member of the role"):
            run_sql(app_role, f"SELECT pg_terminate_backend({worker_pid})")
        with pytest.raises(CurationError, match="query failed: permission denied for table problem"):
            run_sql(app_role, "LOCK TABLE problem IN ACCESS EXCLUSIVE MODE")
        assert session.execute(text("SELECT pg_backend_pid()")).scalar_one() == worker_pid  # still connected


@pytest.mark.postgres
def test_an_application_role_answers_itself_when_no_reader_can_be_had(
    app_role: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_console, "READER_ROLE", "curation_no_such_role")
    with app_role.transaction() as session:
        ingest_procedural(session, count=3, seed=1)
    assert run_sql(app_role, "SELECT current_user = session_user, COUNT(*) FROM problem").rows == [(True, 3)]
    with pytest.raises(CurationError, match="query failed: cannot execute DELETE in a read-only transaction"):
        run_sql(app_role, "DELETE FROM problem")
    assert _problems(app_role) == 3


@pytest.mark.postgres
def test_the_command_refuses_copy_to_program_as_the_default_user(pg: Database) -> None:
    """What the issue reproduced, through `curation sql` itself, with the README's default URL."""
    marker = Path(f"/tmp/curation-test-{uuid.uuid4().hex}")
    try:
        result = subprocess.run(
            [sys.executable, "-c", "from curation.cli.app import main; main()", "sql",
             f"COPY (SELECT 1) TO PROGRAM 'touch {marker}'"],
            capture_output=True, text=True, cwd=ROOT, env={"CURATION_DATABASE_URL": pg.url, "PATH": "/usr/bin:/bin"},
        )  # fmt: skip
        assert result.returncode == 2, result.stdout + result.stderr
        assert "query failed: must be superuser or have privileges of the pg_execute_server_program" in result.stderr
        assert not marker.exists()
    finally:
        marker.unlink(missing_ok=True)


def test_a_statement_that_runs_past_the_timeout_is_cancelled(db: Database) -> None:
    cancelled = {
        "sqlite": r"query failed: cancelled after 0\.3 s \(CURATION_SQL_TIMEOUT_S\)",
        "postgresql": "query failed: canceling statement due to statement timeout",
    }[db.engine.dialect.name]
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT MAX(x) FROM c"
    with pytest.raises(CurationError, match=cancelled):
        run_sql(db, endless, timeout_s=0.3)
    with db.transaction() as session:
        ingest_procedural(session, count=2, seed=1)
    assert run_sql(db, "SELECT COUNT(*) FROM problem", timeout_s=5).rows == [(2,)]
