"""Shared fixtures: real SQLite files and a real PostgreSQL server, schemas built by `alembic upgrade`.

Database tests take the `db` fixture and run once per backend. PostgreSQL comes from
CURATION_TEST_POSTGRES_URL (default: the local server, trust auth). When it cannot be reached the
PostgreSQL variants are skipped, except under CI=true, where they fail: CI must run them.
"""

# ruff: noqa: E402  (the environment is cleaned before the imports below read it)
from __future__ import annotations

import os

# Before anything imports rich or typer (which read these at import or at Console()): the output
# tests parse must not depend on the terminal CI runs under. FORCE_COLOR, PY_COLORS, TTY_COMPATIBLE
# and TTY_INTERACTIVE make piped output a terminal's, escape codes in the tables; NO_COLOR goes too
# so every run sees one console. A fixed wide COLUMNS/LINES replaces CI's, so nothing read wraps.
for _name in ("FORCE_COLOR", "PY_COLORS", "CLICOLOR_FORCE", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
    os.environ.pop(_name, None)
os.environ.update({"COLUMNS": "250", "LINES": "50", "TERMINAL_WIDTH": "250"})

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

import curation.models  # noqa: F401  (registers every table)
from curation.db import migrations
from curation.db.base import Base
from curation.db.session import Database
from curation.settings import get_settings

ROOT = Path(__file__).resolve().parents[1]
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_URL = os.environ.get("CURATION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CURATION_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def unavailable(what: str, error: object) -> None:
    message = f"needs {what}: {error}"
    if IN_CI:
        pytest.fail(f"{message} (under CI=true these tests must run, not be skipped)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = Path(os.environ.get("CURATION_TEST_DATA", ROOT.parent / "shared" / "data"))
    if not (path / "gsm8k" / "train.jsonl").is_file():
        pytest.fail(f"benchmark data not found at {path}; set CURATION_TEST_DATA to ../shared/data")
    return path


@pytest.fixture(scope="session")
def smollm2_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled SmolLM2-135M-Instruct as an ordinary transformers folder (converted once per session)."""
    from workers.teachers.embedded_model import prepare_embedded_model

    return prepare_embedded_model(tmp_path_factory.mktemp("models") / "SmolLM2-135M-Instruct")


@pytest.fixture(scope="session")
def tiny_student(smollm2_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised two-layer Llama with the SmolLM2 tokenizer (tests/support/tiny_model.py)."""
    from tests.support.tiny_model import save_tiny_student

    return save_tiny_student(smollm2_folder, tmp_path_factory.mktemp("models") / "tiny-student")


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test reads the developer's own database or data directory."""
    data_dir = tmp_path_factory.mktemp("data-dir")
    monkeypatch.setenv("CURATION_DATA_DIR", str(data_dir))
    monkeypatch.delenv("CURATION_DATABASE_URL", raising=False)
    monkeypatch.delenv("CURATION_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


# --- SQLite ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    database = Database(f"sqlite:///{path}")
    migrations.upgrade(database)
    database.dispose()  # closing the last connection checkpoints the WAL into the main file
    return path


def fresh_sqlite(template: Path, directory: Path) -> Database:
    path = directory / "curation.db"
    shutil.copyfile(template, path)
    return Database(f"sqlite:///{path}")


# --- PostgreSQL ----------------------------------------------------------------------------------


def _create_database(admin_url: str, name: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    engine = create_engine(POSTGRES_URL)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        unavailable("PostgreSQL", error)
    finally:
        engine.dispose()
    return POSTGRES_URL


@pytest.fixture(scope="session")
def postgres_factory(postgres_admin_url: str, worker_id: str, testrun_uid: str) -> Iterator[PostgresFactory]:
    # Names unique to this test run: two runs on one server (two checkouts, CI beside a developer)
    # must not drop each other's databases.
    factory = PostgresFactory(postgres_admin_url, prefix=f"curation_test_{testrun_uid[:8]}_{worker_id}")
    yield factory
    factory.drop_all()


class PostgresFactory:
    """Creates empty databases on the test server, one name per purpose, dropped at the end."""

    def __init__(self, admin_url: str, prefix: str) -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        self.names: set[str] = set()

    def create(self, suffix: str) -> str:
        name = f"{self.prefix}_{suffix}"
        self.names.add(name)
        return _create_database(self.admin_url, name)

    def drop_all(self) -> None:
        engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as connection:
                for name in self.names:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def postgres_migrated(postgres_factory: PostgresFactory) -> str:
    url = postgres_factory.create("main")
    database = Database(url)
    migrations.upgrade(database)
    database.dispose()
    return url


def _truncate_all(database: Database) -> None:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with database.engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


# --- The fixture most tests use --------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: a fresh SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        database = fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
    else:
        database = Database(request.getfixturevalue("postgres_migrated"))
        _truncate_all(database)
    yield database
    database.dispose()


@pytest.fixture
def sqlite_db(sqlite_template: Path, tmp_path: Path) -> Iterator[Database]:
    database = fresh_sqlite(sqlite_template, tmp_path)
    yield database
    database.dispose()
