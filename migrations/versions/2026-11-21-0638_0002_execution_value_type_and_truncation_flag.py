"""execution: the Python type of a program's value, and whether its output was truncated

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 06:38:35
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# On SQLite, batch mode rebuilds the table (copy, drop, rename), which the views that read it do
# not survive: they are dropped first and created again afterwards, in both directions.


def upgrade() -> None:
    drop_views(op, views.V1)
    with op.batch_alter_table("execution") as batch_op:
        batch_op.add_column(sa.Column("value_type", sa.String(100), nullable=True))
        batch_op.add_column(sa.Column("output_truncated", sa.Boolean(), server_default=sa.false(), nullable=False))
    create_views(op, views.V1)


def downgrade() -> None:
    drop_views(op, views.V1)
    with op.batch_alter_table("execution") as batch_op:
        batch_op.drop_column("output_truncated")
        batch_op.drop_column("value_type")
    create_views(op, views.V1)
