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

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, inspect, pool
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from curation.db.session import Database
from curation.errors import CurationError

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


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0]


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


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool, connect_args={"connect_timeout": 10})


def _run_as(engine: Engine, statement: str, limit: int | None, source: str) -> QueryResult:
    try:
        with engine.connect() as connection:
            reason = unsafe_role(connection)
            if reason is not None:
                raise CurationError(
                    f"{source}: {reason}, and the SQL console runs statements only as a role that can read "
                    "and do nothing else (see docs/sql.md)"
                )
            try:
                return _run_postgresql(connection, statement, limit)
            finally:
                connection.rollback()
    finally:
        engine.dispose()


def _reader_can_stand_in(connection: Connection) -> bool:
    """Whether this role may write to the schema while the reader role may read all of it.

    An application role that is no superuser cannot change a row inside the READ ONLY
    transaction, but it can still signal its own sessions (`pg_terminate_backend` of every
    worker's connection) and take its tables' locks: the reader, where it can read what this
    role can, runs the statement instead."""
    return bool(connection.exec_driver_sql(_READER_CAN_STAND_IN, (READER_ROLE, READER_ROLE)).scalar())


def _run_on_postgresql(db: Database, statement: str, limit: int | None, sql_url: str | None) -> QueryResult:
    if sql_url:
        try:
            return _run_as(_engine(sql_url), statement, limit, "CURATION_SQL_URL")
        except OperationalError as error:
            raise CurationError(f"cannot connect with CURATION_SQL_URL: {_first_line(error)}") from None
    reader = make_url(db.url).set(username=READER_ROLE, password=None)
    with db.engine.connect() as connection:
        reason = unsafe_role(connection)
        prefer_reader = reason is None and _reader_can_stand_in(connection)
        connection.rollback()
    if prefer_reader:
        try:
            return _run_as(_engine(reader.render_as_string(hide_password=False)), statement, limit, READER_ROLE)
        except OperationalError:
            pass  # it cannot log in here (a server that asks for passwords): the application role answers
    if reason is None:
        with db.engine.connect() as connection:
            try:
                return _run_postgresql(connection, statement, limit)
            finally:
                connection.rollback()
    try:
        return _run_as(_engine(reader.render_as_string(hide_password=False)), statement, limit, READER_ROLE)
    except OperationalError as error:
        raise CurationError(
            f"the SQL console will not run statements as the database URL's {reason}: a superuser's SQL can "
            "run shell commands (COPY ... TO PROGRAM) whatever the transaction. It tried the read-only role "
            f"{READER_ROLE!r} instead, which failed: {_first_line(error)}. Set CURATION_SQL_URL to a role that "
            f"can only read (docs/sql.md: give {READER_ROLE!r} a password, or create your own)"
        ) from None


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


def _run_sqlite(connection: Connection, statement: str, limit: int | None) -> QueryResult:
    driver = connection.connection.driver_connection
    assert isinstance(driver, sqlite3.Connection)
    connection.exec_driver_sql("PRAGMA query_only = ON")
    # Setting an authorizer expires the connection's prepared statements, so none compiled
    # before it (the driver's statement cache) escapes the check.
    driver.set_authorizer(_read_only_authorizer)
    try:
        cursor = driver.cursor()
        try:
            cursor.execute(statement)  # as written: no parameters, so nothing in it is taken for one
        except (sqlite3.Error, sqlite3.Warning) as error:
            raise CurationError(f"query failed: {_first_line(error)}") from None
        if cursor.description is None:
            return QueryResult([], [], False)
        return _collect([c[0] for c in cursor.description], cursor.fetchmany, cursor.fetchall, limit)
    finally:
        driver.set_authorizer(None)
        connection.exec_driver_sql("PRAGMA query_only = OFF")  # the pooled connection writes again


def run_sql(db: Database, statement: str, *, limit: int | None = 1_000, sql_url: str | None = None) -> QueryResult:
    """Run one read-only statement (see the module's docstring); at most `limit` rows.

    sql_url: on PostgreSQL, the URL of the role to run it as (CURATION_SQL_URL)."""
    if db.engine.dialect.name == "postgresql":
        return _run_on_postgresql(db, statement, limit, sql_url)
    with db.read() as session:
        try:
            return _run_sqlite(session.connection(), statement, limit)
        except DBAPIError as error:
            raise CurationError(f"query failed: {_first_line(error)}") from None


def view_names(session: Session) -> list[str]:
    return sorted(inspect(session.connection()).get_view_names())
