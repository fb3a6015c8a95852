"""generation.choice_order: the order in which a prompt showed a problem's options

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

# The views that read `generation` do not survive SQLite's batch mode (copy, drop, rename of the
# table): they are dropped first and created again afterwards, in both directions, as they were
# at revision 0004 (not views.CURRENT, which later revisions may change).
VIEWS_AT_0004 = [(name, dict(views.V2).get(name, body)) for name, body in views.V1]


def upgrade() -> None:
    drop_views(op, VIEWS_AT_0004)
    with op.batch_alter_table("generation") as batch_op:
        batch_op.add_column(sa.Column("choice_order", JSON, nullable=True))
    create_views(op, VIEWS_AT_0004)


def downgrade() -> None:
    drop_views(op, VIEWS_AT_0004)
    with op.batch_alter_table("generation") as batch_op:
        batch_op.drop_column("choice_order")
    create_views(op, VIEWS_AT_0004)
