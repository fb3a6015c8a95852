"""Views V7: a repair is one only of an attempt that was not correct

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 13:00:00

refinement_step.repaired was 1 whenever the refinement is correct, even when the attempt it
refines was correct already, and repair_rate_by_error counted that attempt among the failures.
V7 follows refinement_outcome.fixed's rule (since 0006): repaired means the parent was not correct
and the refinement is, and a correct parent is no failure. No table changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _views_at(number: int) -> list[tuple[str, str]]:
    return views.in_creation_order(views.at_version(number))


def upgrade() -> None:
    drop_views(op, _views_at(6))
    create_views(op, _views_at(7))


def downgrade() -> None:
    drop_views(op, _views_at(7))
    create_views(op, _views_at(6))
