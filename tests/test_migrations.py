"""The Alembic history builds exactly the models' schema, both ways, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from curation.db import migrations
from curation.db.base import Base
from curation.db.session import Database
from tests.conftest import PostgresFactory

EXPECTED_VIEWS = {
    "current_label",
    "current_execution",
    "run_quality",
    "quality",
    "problem_coverage",
    "unsolved_problem",
    "execution_error_breakdown",
    "rationale_lineage",
    "refinement_outcome",
    "snapshot_summary",
    "snapshot_composition",
    "snapshot_source_run",
    "rationale_snapshot",
    "refinement_step",
    "repair_rate_by_error",
    "evaluation_round",
    "refinement_round_accuracy",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'empty.db'}")
    factory: PostgresFactory = request.getfixturevalue("postgres_factory")
    return Database(factory.create("migrations"))


def _schema_diff(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "render_as_batch": True})
        return list(compare_metadata(context, Base.metadata))


def _tables(database: Database) -> set[str]:
    names = set(inspect(database.engine).get_table_names())
    return names - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_db: Database) -> None:
    migrations.upgrade(empty_db)
    assert migrations.current_revision(empty_db) == migrations.head_revision()
    assert _tables(empty_db) == set(Base.metadata.tables)
    assert set(inspect(empty_db.engine).get_view_names()) == EXPECTED_VIEWS

    migrations.downgrade(empty_db, "base")
    assert migrations.current_revision(empty_db) is None
    assert _tables(empty_db) == set()
    assert inspect(empty_db.engine).get_view_names() == []

    migrations.upgrade(empty_db)
    assert _tables(empty_db) == set(Base.metadata.tables)
    empty_db.dispose()


def test_autogenerate_finds_no_difference(empty_db: Database) -> None:
    migrations.upgrade(empty_db)
    assert _schema_diff(empty_db) == []
    empty_db.dispose()


def test_constraint_names_follow_the_convention(db: Database) -> None:
    inspector = inspect(db.engine)
    for table in Base.metadata.tables:
        for unique in inspector.get_unique_constraints(table):
            assert (unique["name"] or "").startswith("uq_"), (table, unique)
        for foreign_key in inspector.get_foreign_keys(table):
            assert (foreign_key["name"] or "").startswith("fk_"), (table, foreign_key)


def test_every_view_runs(db: Database) -> None:
    with db.read() as session:
        for view in EXPECTED_VIEWS:
            session.execute(text(f"SELECT * FROM {view}")).all()
