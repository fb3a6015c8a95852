"""Engines for the two supported databases: a SQLite file (embedded) and PostgreSQL (distributed)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

from curation.db.base import json_dumps, json_loads
from curation.settings import get_settings

READ_ONLY = "curation_read_only"
"""Execution option: a SQLite transaction that only reads begins DEFERRED instead of IMMEDIATE."""


def create_db_engine(url: str | None = None, *, echo: bool | None = None) -> Engine:
    settings = get_settings()
    sa_url = make_url(url or settings.database_url)
    echo = settings.echo_sql if echo is None else echo
    if sa_url.get_backend_name() == "sqlite":
        return _sqlite_engine(str(sa_url), settings.sqlite_busy_timeout_ms, echo)
    return create_engine(
        sa_url, echo=echo, pool_pre_ping=True, json_serializer=json_dumps, json_deserializer=json_loads
    )


def _sqlite_engine(url: str, busy_timeout_ms: int, echo: bool) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000},
        json_serializer=json_dumps,
        json_deserializer=json_loads,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" hook below issue BEGIN: the driver's own implicit BEGIN is
        # DEFERRED, and a deferred transaction that reads and then writes fails at once with
        # "database is locked" when another writer holds the lock, whatever the busy timeout.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        mode = "DEFERRED" if connection.get_execution_options().get(READ_ONLY) else "IMMEDIATE"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine
