"""batch_lease: which task is generating which batch; run_quality counts the labelled execution

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "batch_lease",
        sa.Column("synthesis_run_id", ID, nullable=False),
        sa.Column("batch_key", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["synthesis_run_id"], ["synthesis_run.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("synthesis_run_id", "batch_key"),
    )
    drop_views(op, [(name, "") for name, _ in views.V2])
    create_views(op, views.V2)


def downgrade() -> None:
    drop_views(op, views.V2)
    create_views(op, [(name, dict(views.V1)[name]) for name, _ in views.V2])
    op.drop_table("batch_lease")
