"""snapshots that the database keeps immutable, reference rationales, the snapshot views (V4)

- `rationale.origin` may be `reference` (GSM8K's human solutions, the procedural problems' own
  rationales), and `prompt_template.style` may be `reference` (the template of a reference run,
  which names where its rationales come from and is never rendered).
- `snapshot`: `kind` (training | evaluation), `manifest`, `sealed`; `export_format` goes (a
  snapshot is exported to any format; each export writes its own manifest).
- `snapshot_member`: `problem_id`, `label_id` (the label the selection read) and
  `content_sha256` (the member's canonical record); problem_id is filled from the rationale for
  members made before.
- Triggers (curation/db/triggers.py) refuse changes to a sealed snapshot, its members, and the
  text its members export. Snapshots made before this revision are sealed by it.
- Views V4 (curation/db/views.py): snapshot_summary, snapshot_composition, snapshot_source_run,
  rationale_snapshot.

A downgrade keeps every row: reference rationales become `teacher` and reference templates
`few_shot_cot` (revision 0006 knows no other values), and export_format reads 'jsonl'.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curation.db import triggers, views
from curation.db.views import create_views, drop_views

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")

ORIGINS_BEFORE = ("teacher", "student", "refinement")
ORIGINS_NOW = ("teacher", "reference", "student", "refinement")
STYLES_BEFORE = ("zero_shot_cot", "few_shot_cot", "program")
STYLES_NOW = ("zero_shot_cot", "few_shot_cot", "program", "reference")


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _views_at(number: int) -> list[tuple[str, str]]:
    return views.in_creation_order(views.at_version(number))


def _replace_check(table: str, name: str, condition: str) -> None:
    with op.batch_alter_table(table) as batch_op:
        batch_op.drop_constraint(op.f(name), type_="check")
        batch_op.create_check_constraint(op.f(name), condition)


def upgrade() -> None:
    drop_views(op, _views_at(3))
    _replace_check("rationale", "ck_rationale_rationale_origin", _in("origin", ORIGINS_NOW))
    _replace_check("prompt_template", "ck_prompt_template_template_style", _in("style", STYLES_NOW))

    with op.batch_alter_table("snapshot") as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.Enum("training", "evaluation", name="snapshot_kind", native_enum=False, create_constraint=True,
                        length=32),
                nullable=False,
                server_default="training",
            )
        )  # fmt: skip
        batch_op.add_column(sa.Column("manifest", JSON, nullable=True))
        batch_op.add_column(sa.Column("sealed", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_column("export_format")

    with op.batch_alter_table("snapshot_member") as batch_op:
        batch_op.add_column(sa.Column("problem_id", ID, nullable=True))
        batch_op.add_column(sa.Column("label_id", ID, nullable=True))
        batch_op.add_column(sa.Column("content_sha256", sa.String(64), nullable=True))
    op.execute(
        "UPDATE snapshot_member SET problem_id = "
        "(SELECT ra.problem_id FROM rationale ra WHERE ra.id = snapshot_member.rationale_id)"
    )
    with op.batch_alter_table("snapshot_member") as batch_op:
        batch_op.alter_column("problem_id", existing_type=ID, nullable=False)
        batch_op.create_foreign_key(op.f("fk_snapshot_member_problem_id_problem"), "problem", ["problem_id"], ["id"])
        batch_op.create_foreign_key(op.f("fk_snapshot_member_label_id_label"), "label", ["label_id"], ["id"])
        batch_op.create_index(op.f("ix_snapshot_member_problem_id"), ["problem_id"])

    op.execute("UPDATE snapshot SET sealed = TRUE")  # made before snapshots could be sealed: frozen now
    create_views(op, _views_at(4))
    triggers.create_guards(op)


def downgrade() -> None:
    triggers.drop_guards(op)
    drop_views(op, _views_at(4))
    with op.batch_alter_table("snapshot_member") as batch_op:
        batch_op.drop_index(op.f("ix_snapshot_member_problem_id"))
        batch_op.drop_constraint(op.f("fk_snapshot_member_label_id_label"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_snapshot_member_problem_id_problem"), type_="foreignkey")
        batch_op.drop_column("content_sha256")
        batch_op.drop_column("label_id")
        batch_op.drop_column("problem_id")
    with op.batch_alter_table("snapshot") as batch_op:
        batch_op.add_column(sa.Column("export_format", sa.String(50), nullable=False, server_default="jsonl"))
        batch_op.drop_column("sealed")
        batch_op.drop_column("manifest")
        batch_op.drop_constraint(op.f("ck_snapshot_snapshot_kind"), type_="check")
        batch_op.drop_column("kind")
    with op.batch_alter_table("snapshot") as batch_op:
        batch_op.alter_column("export_format", existing_type=sa.String(50), server_default=None)

    op.execute("UPDATE prompt_template SET style = 'few_shot_cot' WHERE style = 'reference'")
    _replace_check("prompt_template", "ck_prompt_template_template_style", _in("style", STYLES_BEFORE))
    op.execute("UPDATE rationale SET origin = 'teacher' WHERE origin = 'reference'")
    _replace_check("rationale", "ck_rationale_rationale_origin", _in("origin", ORIGINS_BEFORE))
    create_views(op, _views_at(3))
