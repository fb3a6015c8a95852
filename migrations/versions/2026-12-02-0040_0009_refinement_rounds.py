"""rationale.refinement_round, and the views of refinement rounds (V5)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:40:00

A refinement's round is stored with it (1 for the repair of a student's output, 2 for the repair
of that repair, ...), so SQL reads round 1, round 2, ... without walking the chain; the chain
itself stays parent_id. A plain ADD COLUMN, no table rebuild: on SQLite a rebuild of `rationale`
would drop the snapshot guards (triggers) with the table.

Views V5 (curation/db/views.py): refinement_step, evaluation_round, repair_rate_by_error,
refinement_round_accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_rationale_refinement_round"


def _views_at(number: int) -> list[tuple[str, str]]:
    return views.in_creation_order(views.at_version(number))


def upgrade() -> None:
    op.add_column("rationale", sa.Column("refinement_round", sa.Integer(), nullable=True))
    op.create_index(INDEX, "rationale", ["refinement_round"])
    # Refinements made before rounds were stored: their depth in the parent chain.
    op.execute(
        """
WITH RECURSIVE chain(id, parent_id, depth) AS (
    SELECT id, parent_id, 1 FROM rationale WHERE origin = 'refinement' AND parent_id IS NOT NULL
    UNION ALL
    SELECT chain.id, r.parent_id, chain.depth + 1
    FROM chain JOIN rationale r ON r.id = chain.parent_id
    WHERE r.origin = 'refinement' AND r.parent_id IS NOT NULL
)
UPDATE rationale SET refinement_round = (SELECT MAX(depth) FROM chain WHERE chain.id = rationale.id)
WHERE origin = 'refinement' AND parent_id IS NOT NULL"""
    )
    create_views(op, [(name, body) for name, body in views.V5])


def downgrade() -> None:
    drop_views(op, [(name, body) for name, body in views.V5])
    op.drop_index(INDEX, table_name="rationale")
    op.drop_column("rationale", "refinement_round")
