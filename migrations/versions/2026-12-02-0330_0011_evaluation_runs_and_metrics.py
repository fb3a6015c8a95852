"""evaluation.synthesis_run_id and evaluation.metrics; prompt_template.style may be `student`

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 03:30:00

An evaluation's outputs are generations of its own synthesis run (teacher = the student model,
a `student` template naming its prompt format, the task and split, params = the decoding), so
the raw output, its token counts and latency are kept as for a teacher; the output rationales
point at them. `metrics` holds what the decoding cost (student tokens, sandbox programs, wall
seconds). Evaluations made before have neither (NULL): their outputs were never kept raw.

A downgrade keeps every row: student templates become `program` (pad and repair formats) or
`few_shot_cot` (ftcot), the styles 0010 knows.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

STYLES_BEFORE = ("zero_shot_cot", "few_shot_cot", "program", "reference")
STYLES_NOW = (*STYLES_BEFORE, "student")
STYLE_CHECK = "ck_prompt_template_template_style"
INDEX = "ix_evaluation_synthesis_run_id"


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _views() -> list[tuple[str, str]]:
    return views.in_creation_order(views.at_version(5))


def _replace_check(condition: str) -> None:
    with op.batch_alter_table("prompt_template") as batch_op:
        batch_op.drop_constraint(op.f(STYLE_CHECK), type_="check")
        batch_op.create_check_constraint(op.f(STYLE_CHECK), condition)


def upgrade() -> None:
    # SQLite rebuilds these tables; the views that read them go first and come back after.
    drop_views(op, _views())
    _replace_check(_in("style", STYLES_NOW))
    with op.batch_alter_table("evaluation") as batch_op:
        batch_op.add_column(sa.Column("synthesis_run_id", ID, nullable=True))
        batch_op.add_column(sa.Column("metrics", JSON, nullable=True))
        batch_op.create_foreign_key(
            op.f("fk_evaluation_synthesis_run_id_synthesis_run"), "synthesis_run", ["synthesis_run_id"], ["id"]
        )
        batch_op.create_index(INDEX, ["synthesis_run_id"])
    create_views(op, _views())


def downgrade() -> None:
    drop_views(op, _views())
    with op.batch_alter_table("evaluation") as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.drop_constraint(op.f("fk_evaluation_synthesis_run_id_synthesis_run"), type_="foreignkey")
        batch_op.drop_column("metrics")
        batch_op.drop_column("synthesis_run_id")
    # Before 0011 a worker or the supervisor resumes any unfinished run: an evaluation's run left
    # pending or running would be resumed with the student as its teacher.
    op.execute(
        "UPDATE synthesis_run SET status = 'cancelled' WHERE status IN ('pending', 'running') AND template_id IN "
        "(SELECT id FROM prompt_template WHERE style = 'student')"
    )
    op.execute("UPDATE prompt_template SET style = 'few_shot_cot' WHERE style = 'student' AND name LIKE '%ftcot%'")
    op.execute("UPDATE prompt_template SET style = 'program' WHERE style = 'student'")
    _replace_check(_in("style", STYLES_BEFORE))
    create_views(op, _views())
