"""training_run.lease_holder and lease_expires_at: one trainer per run at a time

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 03:30:00

A training task claims its run before it trains (trainer/lease.py) and renews the claim while it
trains, so that a redelivered task message (the broker's visibility timeout ran out while the run
still trains) or a second worker finds the run held and leaves its folder alone. Two nullable
columns, a plain ADD COLUMN (and DROP COLUMN) on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("training_run", sa.Column("lease_holder", sa.String(200), nullable=True))
    op.add_column("training_run", sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite 3.35+ has it): a batch rebuild of training_run would have to
    # drop the views that read it first.
    op.drop_column("training_run", "lease_expires_at")
    op.drop_column("training_run", "lease_holder")
