"""Views V6: evaluation runs out of the teacher views; refinement rounds by the run trained in them

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 04:30:00

Since 0011 every evaluation has a synthesis run (teacher = the student model, a `student`
template): run_quality, quality and unsolved_problem counted those as teacher runs, so a test
problem a student was evaluated on looked attempted by a teacher. V6 leaves runs of `student`
templates out of them. refinement_round_accuracy: round k's after-run is the run trained in round
k (before, every later run whose snapshot carried round k's repairs forward was one too), and the
evaluations compared are greedy ones. No table changes.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _views_at(number: int) -> list[tuple[str, str]]:
    return views.in_creation_order(views.at_version(number))


def upgrade() -> None:
    drop_views(op, _views_at(5))
    create_views(op, _views_at(6))


def downgrade() -> None:
    drop_views(op, _views_at(6))
    create_views(op, _views_at(5))
