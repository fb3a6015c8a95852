"""Initial schema: the whole distillation loop, and the SQL views over rationale quality.

Revision ID: 0001
Revises:
Create Date: 2026-11-21 06:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from curation.db import views
from curation.db.views import create_views, drop_views

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as of this revision (a migration must not change when the
# application code does).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TS = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _created() -> sa.Column[sa.DateTime]:
    return sa.Column("created_at", TS, nullable=False)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _fk(column: str, target: str, *, nullable: bool = False, ondelete: str | None = None) -> sa.Column[int]:
    return sa.Column(column, ID, sa.ForeignKey(target, ondelete=ondelete), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model",
        _id(),
        sa.Column("role", _enum("model_role", "teacher", "student"), nullable=False),
        sa.Column("backend", sa.String(50), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("revision", sa.String(200), nullable=False),
        sa.Column("parameters", JSON),
        _created(),
        sa.UniqueConstraint("role", "backend", "name", "revision"),
    )
    op.create_table(
        "prompt_template",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("style", _enum("template_style", "zero_shot_cot", "few_shot_cot", "program"), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("answer_text", sa.Text()),
        sa.Column("content_hash", sa.String(64), nullable=False),
        _created(),
        sa.UniqueConstraint("name", "version"),
        sa.UniqueConstraint("content_hash"),
    )
    op.create_table(
        "task",
        _id(),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column(
            "answer_type",
            _enum("answer_type", "number", "multiple_choice", "yes_no", "text"),
            nullable=False,
        ),
        sa.Column("description", sa.Text()),
        _created(),
    )
    op.create_table(
        "split",
        _id(),
        _fk("task_id", "task.id", ondelete="CASCADE"),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("purpose", _enum("split_purpose", "train", "eval"), nullable=False),
        _created(),
        sa.UniqueConstraint("task_id", "name"),
    )
    op.create_table(
        "problem",
        _id(),
        sa.Column("task_id", ID, nullable=False),
        sa.Column("split", sa.String(100), nullable=False),
        sa.Column("source_ref", sa.String(255), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("gold_answer_raw", sa.Text(), nullable=False),
        sa.Column("gold_answer", sa.Text(), nullable=False),
        sa.Column("choices", JSON),
        sa.Column("reference_rationale", sa.Text()),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("meta", JSON),
        _created(),
        sa.ForeignKeyConstraint(["task_id", "split"], ["split.task_id", "split.name"], ondelete="CASCADE"),
        sa.UniqueConstraint("task_id", "split", "source_ref"),
    )
    op.create_index(op.f("ix_problem_content_hash"), "problem", ["content_hash"])

    op.create_table(
        "snapshot",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", JSON, nullable=False),
        sa.Column("export_format", sa.String(50), nullable=False),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("row_count", sa.BigInteger(), nullable=False),
        _created(),
        sa.UniqueConstraint("name", "version"),
    )
    op.create_index(op.f("ix_snapshot_content_sha256"), "snapshot", ["content_sha256"])

    op.create_table(
        "synthesis_run",
        _id(),
        sa.Column("name", sa.String(200)),
        _fk("teacher_id", "model.id"),
        _fk("template_id", "prompt_template.id"),
        _fk("task_id", "task.id"),
        sa.Column("split", sa.String(100)),
        sa.Column("selection", JSON),
        sa.Column("samples_per_problem", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("top_p", sa.Float()),
        sa.Column("max_tokens", sa.Integer()),
        sa.Column("seed", sa.Integer()),
        sa.Column("source", sa.String(1000)),
        sa.Column(
            "status",
            _enum("run_status", "pending", "running", "completed", "failed", "cancelled"),
            nullable=False,
        ),
        sa.Column("problems_total", sa.Integer(), nullable=False),
        sa.Column("generations_done", sa.Integer(), nullable=False),
        sa.Column("generations_failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(2000)),
        _created(),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    for column in ("task_id", "teacher_id", "template_id"):
        op.create_index(op.f(f"ix_synthesis_run_{column}"), "synthesis_run", [column])

    op.create_table(
        "training_run",
        _id(),
        _fk("snapshot_id", "snapshot.id"),
        _fk("base_model_id", "model.id"),
        _fk("output_model_id", "model.id", nullable=True),
        _fk("parent_run_id", "training_run.id", nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("status", _enum("training_status", "pending", "running", "completed", "failed"), nullable=False),
        sa.Column("metrics", JSON),
        sa.Column("checkpoint_path", sa.String(1000)),
        sa.Column("error", sa.Text()),
        _created(),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )
    for column in ("base_model_id", "snapshot_id"):
        op.create_index(op.f(f"ix_training_run_{column}"), "training_run", [column])

    op.create_table(
        "evaluation",
        _id(),
        _fk("model_id", "model.id"),
        _fk("training_run_id", "training_run.id", nullable=True),
        _fk("task_id", "task.id"),
        sa.Column("split", sa.String(100), nullable=False),
        sa.Column("decoding", JSON),
        sa.Column(
            "status",
            _enum("evaluation_status", "pending", "running", "completed", "failed"),
            nullable=False,
        ),
        sa.Column("problems", sa.Integer(), nullable=False),
        sa.Column("correct", sa.Integer(), nullable=False),
        sa.Column("unparseable", sa.Integer(), nullable=False),
        sa.Column("accuracy", sa.Float()),
        _created(),
        sa.Column("finished_at", TS),
    )
    for column in ("model_id", "training_run_id"):
        op.create_index(op.f(f"ix_evaluation_{column}"), "evaluation", [column])

    op.create_table(
        "generation",
        _id(),
        _fk("synthesis_run_id", "synthesis_run.id", ondelete="CASCADE"),
        _fk("problem_id", "problem.id"),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("status", _enum("generation_status", "ok", "failed"), nullable=False),
        sa.Column("prompt_hash", sa.String(64)),
        sa.Column("output", sa.Text()),
        sa.Column("answer_output", sa.Text()),
        sa.Column("finish_reason", sa.String(50)),
        sa.Column("prompt_tokens", sa.Integer()),
        sa.Column("completion_tokens", sa.Integer()),
        sa.Column("latency_ms", sa.Float()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("meta", JSON),
        _created(),
        sa.UniqueConstraint("synthesis_run_id", "problem_id", "sample_index"),
    )
    op.create_index(op.f("ix_generation_problem_id"), "generation", ["problem_id"])

    op.create_table(
        "rationale",
        _id(),
        _fk("problem_id", "problem.id"),
        _fk("generation_id", "generation.id", nullable=True, ondelete="CASCADE"),
        _fk("parent_id", "rationale.id", nullable=True),
        _fk("evaluation_id", "evaluation.id", nullable=True, ondelete="CASCADE"),
        _fk("model_id", "model.id", nullable=True),
        sa.Column("sample_index", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("rationale_kind", "cot", "program"), nullable=False),
        sa.Column("origin", _enum("rationale_origin", "teacher", "student", "refinement"), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text()),
        sa.Column("feedback", sa.Text()),
        _created(),
        sa.UniqueConstraint("generation_id"),
    )
    for column in ("evaluation_id", "model_id", "parent_id", "problem_id"):
        op.create_index(op.f(f"ix_rationale_{column}"), "rationale", [column])

    op.create_table(
        "execution",
        _id(),
        _fk("rationale_id", "rationale.id", ondelete="CASCADE"),
        sa.Column(
            "status",
            _enum("execution_status", "ok", "error", "timeout", "memory", "killed", "syntax"),
            nullable=False,
        ),
        sa.Column("value", sa.Text()),
        sa.Column("error_type", sa.String(200)),
        sa.Column("error_message", sa.Text()),
        sa.Column("stdout", sa.Text()),
        sa.Column("stderr", sa.Text()),
        sa.Column("duration_ms", sa.Float()),
        sa.Column("limits", JSON),
        sa.Column("limits_hash", sa.String(64), nullable=False),
        _created(),
        sa.UniqueConstraint("rationale_id", "limits_hash"),
    )
    op.create_table(
        "label",
        _id(),
        _fk("rationale_id", "rationale.id", ondelete="CASCADE"),
        _fk("execution_id", "execution.id", nullable=True, ondelete="SET NULL"),
        sa.Column("verifier", sa.String(100), nullable=False),
        sa.Column("verifier_version", sa.String(50), nullable=False),
        sa.Column("verdict", _enum("verdict", "correct", "incorrect", "unparseable", "error"), nullable=False),
        sa.Column("score", sa.Float()),
        sa.Column("details", JSON),
        _created(),
        sa.UniqueConstraint("rationale_id", "verifier", "verifier_version"),
    )
    op.create_index(op.f("ix_label_execution_id"), "label", ["execution_id"])

    op.create_table(
        "snapshot_member",
        sa.Column("snapshot_id", ID, sa.ForeignKey("snapshot.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("rationale_id", ID, sa.ForeignKey("rationale.id"), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.UniqueConstraint("snapshot_id", "position"),
    )
    op.create_index(op.f("ix_snapshot_member_rationale_id"), "snapshot_member", ["rationale_id"])

    create_views(op, views.V1)


def downgrade() -> None:
    drop_views(op, views.V1)
    for table in (
        "snapshot_member",
        "label",
        "execution",
        "rationale",
        "generation",
        "evaluation",
        "training_run",
        "synthesis_run",
        "snapshot",
        "problem",
        "split",
        "task",
        "prompt_template",
        "model",
    ):
        op.drop_table(table)
