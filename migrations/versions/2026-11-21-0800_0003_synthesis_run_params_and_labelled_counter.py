"""synthesis_run: generation parameters, and a counter of labelled rationales

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# SQLite rebuilds the table in batch mode; the views reading it are dropped and recreated around it.


def upgrade() -> None:
    drop_views(op, views.V1)
    with op.batch_alter_table("synthesis_run") as batch_op:
        batch_op.add_column(sa.Column("params", JSON, nullable=True))
        batch_op.add_column(sa.Column("rationales_labelled", sa.Integer(), server_default="0", nullable=False))
    create_views(op, views.V1)


def downgrade() -> None:
    drop_views(op, views.V1)
    with op.batch_alter_table("synthesis_run") as batch_op:
        batch_op.drop_column("rationales_labelled")
        batch_op.drop_column("params")
    create_views(op, views.V1)
