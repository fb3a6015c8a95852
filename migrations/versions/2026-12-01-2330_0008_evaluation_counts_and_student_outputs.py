"""evaluation: incorrect, error and executed-ok counts; one student output per (evaluation, problem, sample)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 23:30:00

The unique index is what lets a rerun of an evaluation add only what is missing, and two
evaluators racing on one evaluation store each output once. Rationales of other origins have no
evaluation (NULL), and NULLs never collide in a unique index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_rationale_evaluation_id_problem_id_sample_index"


def upgrade() -> None:
    with op.batch_alter_table("evaluation") as batch_op:
        batch_op.add_column(sa.Column("incorrect", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("errors", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("executed_ok", sa.Integer(), nullable=True))
    op.create_index(INDEX, "rationale", ["evaluation_id", "problem_id", "sample_index"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="rationale")
    with op.batch_alter_table("evaluation") as batch_op:
        batch_op.drop_column("executed_ok")
        batch_op.drop_column("errors")
        batch_op.drop_column("incorrect")
