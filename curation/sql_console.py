"""`curation sql`: run a query against the system of record and return rows for display.

The console cannot change data, and that is enforced by the databases, not by inspecting the SQL:
- PostgreSQL: the statement runs as a role that can only read where one can be had (an application
  role that can write gives way to the reader role), in a READ ONLY transaction, sent as
  a prepared statement (which holds exactly one command, so `...; COMMIT; DELETE ...` is refused
  rather than run). A READ ONLY transaction alone does not stop a superuser: `COPY ... TO
  PROGRAM`, `lo_export` and friends reach outside the database. So the role is checked first, and
  one that is a superuser, or may act as one or as pg_execute_server_program,
  pg_write_server_files or pg_read_server_files, is never used: the console connects instead with
  CURATION_SQL_URL, or as the `curation_reader` role the migrations create (SELECT only), and
  refuses with an explanation when neither can be had. (`SET ROLE` to a reader would not do:
  the session would still be the superuser's, and `set_config('role', ...)` inside the statement
  takes the superuser back.)
- SQLite: `PRAGMA query_only` is on while the statement runs, and an authorizer (SQLite's own
  check, made as the statement is compiled) refuses what query_only lets through: `ATTACH` and
  `VACUUM INTO` (each creates a file), `DETACH`, a pragma that sets anything or does anything
  (`PRAGMA query_only = 0`, `foreign_keys = OFF`, `locking_mode = EXCLUSIVE`, `wal_checkpoint`
  would stay on the pooled connection or act on the file), and `load_extension`. Pragmas that
  report (`table_info(problem)`, `user_version`, ...) still answer. The statement goes to the
  driver as written (no bind-parameter parsing: `':word'` in a string literal is text), and the
  driver runs one statement per call.
Either way the transaction is rolled back afterwards.
"""

from __future__ import annotations

import math
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, inspect, pool
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from curation.db.session import Database
from curation.errors import CurationError, first_line

READER_ROLE = "curation_reader"
"""The role migration 0006 creates on PostgreSQL (when the migrating role may create roles):
LOGIN, no password, SELECT on every table and view of the schema."""

# Roles through which SQL reaches the server's programs and files.
_SERVER_ROLES = ("pg_execute_server_program", "pg_write_server_files", "pg_read_server_files")
_UNSAFE_ROLE = f"""
SELECT current_user, s.rolname
FROM pg_roles s
WHERE (s.rolsuper OR s.rolname IN ({", ".join(f"'{name}'" for name in _SERVER_ROLES)}))
  AND pg_has_role(session_user, s.oid, 'MEMBER')
ORDER BY s.rolsuper DESC, s.rolname
LIMIT 1"""

# Whether the current role may write to a table of the schema while READER_ROLE may read every
# table and view of it.
_READER_CAN_STAND_IN = """
SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = %s)
  AND EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
                AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE'))
  AND NOT EXISTS (SELECT FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p', 'v', 'm')
                    AND NOT has_table_privilege(%s, c.oid, 'SELECT'))"""


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool


def _collect(columns: list[str], fetch_many: Any, fetch_all: Any, limit: int | None) -> QueryResult:
    if limit is None:
        return QueryResult(columns, [tuple(r) for r in fetch_all()], False)
    rows = [tuple(r) for r in fetch_many(limit + 1)]
    return QueryResult(columns, rows[:limit], truncated=len(rows) > limit)


# --- PostgreSQL ---------------------------------------------------------------------------------------


def unsafe_role(connection: Connection) -> str | None:
    """Why this connection's role must not run the console's statements, or None if it may."""
    row = connection.exec_driver_sql(_UNSAFE_ROLE).first()
    if row is None:
        return None
    user, role = row
    return f"role {user!r} is a superuser" if role == user else f"role {user!r} can act as {role!r}"


def _run_postgresql(connection: Connection, statement: str, limit: int | None) -> QueryResult:
    import psycopg

    driver = connection.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    with driver.cursor() as cursor:
        try:
            cursor.execute(statement.encode(), prepare=True)
        except psycopg.Error as error:
            raise CurationError(f"query failed: {first_line(error)}") from None
        description: Sequence[Any] | None = cursor.description
        if description is None:
            return QueryResult([], [], False)
        return _collect([c.name for c in description], cursor.fetchmany, cursor.fetchall, limit)


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 10})


def _checked(engine: Engine, source: str) -> Connection:
    """A connection of `engine`, refused if its role could reach outside the database; its first
    transaction is rolled back, so the caller's next statement opens a new one."""
    connection = engine.connect()
    try:
        reason = unsafe_role(connection)
        connection.rollback()
    except BaseException:
        connection.close()
        raise
    if reason is not None:
        connection.close()
        raise CurationError(
            f"{source}: {reason}, and the SQL console runs statements only as a role that can read "
            "and do nothing else (see docs/sql.md)"
        )
    return connection


def _reader_can_stand_in(connection: Connection) -> bool:
    """Whether this role may write to the schema while the reader role may read all of it.

    An application role that is no superuser cannot change a row inside the READ ONLY
    transaction, but it can still signal its own sessions (`pg_terminate_backend` of every
    worker's connection) and take its tables' locks: the reader, where it can read what this
    role can, runs the statement instead."""
    return bool(connection.exec_driver_sql(_READER_CAN_STAND_IN, (READER_ROLE, READER_ROLE)).scalar())


def _open_reading(engine: Engine, sql_url: str | None) -> tuple[Connection, Engine | None]:
    """A connection as the role the module docstring chooses, and the engine to dispose after it
    (None: it is `engine`'s own)."""
    if sql_url:
        own = _engine(sql_url)
        try:
            return _checked(own, "CURATION_SQL_URL"), own
        except OperationalError as error:
            own.dispose()
            raise CurationError(f"cannot connect with CURATION_SQL_URL: {first_line(error)}") from None
        except BaseException:
            own.dispose()
            raise
    with engine.connect() as connection:
        reason = unsafe_role(connection)
        prefer_reader = reason is None and _reader_can_stand_in(connection)
        connection.rollback()
    if prefer_reader or reason is not None:
        reader = _engine(engine.url.set(username=READER_ROLE, password=None).render_as_string(hide_password=False))
        try:
            return _checked(reader, READER_ROLE), reader
        except OperationalError as error:
            reader.dispose()
            if reason is not None:
                raise CurationError(
                    f"the SQL console will not run statements as the database URL's {reason}: a superuser's SQL "
                    "can run shell commands (COPY ... TO PROGRAM) whatever the transaction. It tried the read-only "
                    f"role {READER_ROLE!r} instead, which failed: {first_line(error)}. Set CURATION_SQL_URL to a "
                    f"role that can only read (docs/sql.md: give {READER_ROLE!r} a password, or create your own)"
                ) from None
            # It cannot log in here (a server that asks for passwords): the application role answers.
        except BaseException:
            reader.dispose()
            raise
    return engine.connect(), None


_SNAPSHOT_ID = re.compile(r"^[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?$")


@contextmanager
def reading_connection(
    engine: Engine, *, sql_url: str | None = None, snapshot: str | None = None, timeout_s: float | None = None
) -> Iterator[Connection]:
    """A PostgreSQL connection fit for SQL that nobody here wrote: as a role that can only read
    (the module docstring says which), inside a READ ONLY transaction that is rolled back after.

    snapshot: an id from `pg_export_snapshot()` in another transaction, whose view of the data
    this one then reads (REPEATABLE READ). timeout_s: each statement's limit."""
    connection, owned = _open_reading(engine, sql_url)
    try:
        if snapshot is None:
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        else:
            if not _SNAPSHOT_ID.match(snapshot):
                raise ValueError(f"not a snapshot id: {snapshot!r}")
            connection.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            connection.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")  # a utility statement: no binds
        if timeout_s is not None:
            connection.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, round(timeout_s * 1000))}")
        yield connection
    finally:
        try:
            connection.rollback()
        finally:
            connection.close()
            if owned is not None:
                owned.dispose()


# --- SQLite ---------------------------------------------------------------------------------------------


# Pragmas that only report. Those taking an argument name what they report on (a table, an index);
# the others are allowed only as a question (`PRAGMA user_version`), never with a value to set.
_REPORTING_PRAGMAS_WITH_ARGUMENT = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo",
     "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check"}
)  # fmt: skip
_REPORTING_PRAGMAS = _REPORTING_PRAGMAS_WITH_ARGUMENT | frozenset(
    {"application_id", "auto_vacuum", "busy_timeout", "cache_size", "collation_list", "compile_options",
     "data_version", "database_list", "encoding", "foreign_keys", "freelist_count", "function_list",
     "journal_mode", "module_list", "page_count", "page_size", "pragma_list", "query_only",
     "schema_version", "synchronous", "temp_store", "user_version"}
)  # fmt: skip


def _read_only_authorizer(action: int, arg1: str | None, arg2: str | None, _db: str | None, _via: str | None) -> int:
    """SQLite's compile-time check of each action the console's statement would take."""
    if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):  # VACUUM INTO attaches its target
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        reports = name in _REPORTING_PRAGMAS_WITH_ARGUMENT or (name in _REPORTING_PRAGMAS and arg2 is None)
        return sqlite3.SQLITE_OK if reports else sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() == "load_extension":
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK  # writes are query_only's to refuse


def _run_sqlite(connection: Connection, statement: str, limit: int | None, timeout_s: float | None) -> QueryResult:
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    connection.exec_driver_sql("PRAGMA query_only = ON")
    # Setting an authorizer expires the connection's prepared statements, so none compiled
    # before it (the driver's statement cache) escapes the check.
    driver.set_authorizer(_read_only_authorizer)
    deadline = math.inf if timeout_s is None else time.monotonic() + timeout_s
    if timeout_s is not None:
        # Asked every few thousand virtual-machine steps, while the statement runs and while its
        # rows are fetched; a non-zero answer interrupts it.
        driver.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
    try:
        cursor = driver.cursor()
        try:
            cursor.execute(statement)  # as written: no parameters, so nothing in it is taken for one
            if cursor.description is None:
                return QueryResult([], [], False)
            return _collect([c[0] for c in cursor.description], cursor.fetchmany, cursor.fetchall, limit)
        except (sqlite3.Error, sqlite3.Warning) as error:
            if timeout_s is not None and time.monotonic() > deadline and "interrupt" in str(error):
                raise CurationError(
                    f"query failed: cancelled after {timeout_s:g} s (CURATION_SQL_TIMEOUT_S)"
                ) from None
            raise CurationError(f"query failed: {first_line(error)}") from None
    finally:
        driver.set_progress_handler(None, 0)
        driver.set_authorizer(None)
        connection.exec_driver_sql("PRAGMA query_only = OFF")  # the pooled connection writes again


def run_sql(
    db: Database,
    statement: str,
    *,
    limit: int | None = 1_000,
    sql_url: str | None = None,
    timeout_s: float | None = None,
) -> QueryResult:
    """Run one read-only statement (see the module's docstring); at most `limit` rows.

    sql_url: on PostgreSQL, the URL of the role to run it as (CURATION_SQL_URL). timeout_s: the
    statement is cancelled after this long (CURATION_SQL_TIMEOUT_S), on either database."""
    if db.engine.dialect.name == "postgresql":
        with reading_connection(db.engine, sql_url=sql_url, timeout_s=timeout_s) as connection:
            return _run_postgresql(connection, statement, limit)
    with db.read() as session:
        try:
            return _run_sqlite(session.connection(), statement, limit, timeout_s)
        except DBAPIError as error:
            raise CurationError(f"query failed: {first_line(error)}") from None


def view_names(session: Session) -> list[str]:
    return sorted(inspect(session.connection()).get_view_names())
