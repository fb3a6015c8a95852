"""Empty, migrated databases for benchmarks: each measurement starts from the same schema."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from curation.db import migrations
from curation.db.session import Database


def fresh_sqlite(directory: Path, name: str) -> str:
    """A new SQLite file at the schema's head; returns its path."""
    path = directory / f"{name}.db"
    path.unlink(missing_ok=True)
    database = Database(f"sqlite:///{path}")
    migrations.upgrade(database)
    database.dispose()
    return str(path)


def fresh_postgres(admin_url: str, name: str) -> str:
    """Drop and recreate database `name` on the server of `admin_url`, at the schema's head; its URL."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    migrations.upgrade(database)
    database.dispose()
    return url
