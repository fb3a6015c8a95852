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

    for name, body in VIEWS:
        op.execute(f"CREATE VIEW {name} AS {body}")


def downgrade() -> None:
    for name, _ in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {name}")
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


# --- Views --------------------------------------------------------------------------------------
# Written in the SQL that SQLite (3.25+) and PostgreSQL share: window functions, recursive CTEs,
# CASE instead of FILTER, and a cast to DOUBLE PRECISION wherever integer division would truncate.


def _float(expression: str) -> str:
    # DOUBLE PRECISION is a float on PostgreSQL (a bare `* 1.0` would give NUMERIC) and has REAL
    # affinity on SQLite.
    return f"CAST({expression} AS DOUBLE PRECISION)"


def _bigint(expression: str) -> str:
    # SUM over BIGINT is NUMERIC on PostgreSQL; counts should stay integers.
    return f"CAST({expression} AS BIGINT)"


def _ratio(numerator: str, denominator: str) -> str:
    return f"CASE WHEN {denominator} = 0 THEN NULL ELSE {_float(numerator)} / {denominator} END"


def _pass_at_k(k: int, n: str = "n", c: str = "c") -> str:
    """Unbiased pass@k (Chen et al. 2021): 1 - C(n-c, k) / C(n, k), as a product of k ratios.

    NULL when fewer than k samples exist (pass@k is undefined there).
    """
    ratios = " * ".join(f"({_float(f'{n} - {c} - {j}')} / ({n} - {j}))" for j in range(k))
    return f"CASE WHEN {n} < {k} THEN NULL WHEN {n} - {c} < {k} THEN {_float('1')} ELSE 1.0 - {ratios} END"


_CORRECT = "SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END)"

VIEWS: list[tuple[str, str]] = [
    (
        # The label that speaks for a rationale now: its most recent one. Older labels (other
        # verifier versions) stay in `label` for history.
        "current_label",
        """
SELECT label_id, rationale_id, execution_id, verifier, verifier_version, verdict, score
FROM (
    SELECT l.id AS label_id, l.rationale_id, l.execution_id, l.verifier, l.verifier_version,
           l.verdict, l.score,
           ROW_NUMBER() OVER (PARTITION BY l.rationale_id ORDER BY l.id DESC) AS recency
    FROM label l
) ranked
WHERE recency = 1""",
    ),
    (
        # The most recent execution of each program rationale (re-running under new limits adds
        # a row; the latest one is what the program does now).
        "current_execution",
        """
SELECT execution_id, rationale_id, status, value, error_type, error_message, duration_ms
FROM (
    SELECT e.id AS execution_id, e.rationale_id, e.status, e.value, e.error_type, e.error_message,
           e.duration_ms,
           ROW_NUMBER() OVER (PARTITION BY e.rationale_id ORDER BY e.id DESC) AS recency
    FROM execution e
) ranked
WHERE recency = 1""",
    ),
    (
        "run_quality",
        f"""
SELECT r.id AS synthesis_run_id, r.name AS run_name, t.name AS task, r.split,
       m.name AS teacher, pt.name AS template, pt.version AS template_version, pt.style,
       r.samples_per_problem, r.temperature, r.status,
       COUNT(g.id) AS generations,
       SUM(CASE WHEN g.status = 'failed' THEN 1 ELSE 0 END) AS failed,
       COUNT(ra.id) AS rationales,
       COUNT(cl.label_id) AS labelled,
       SUM(CASE WHEN cl.verdict IN ('correct', 'incorrect', 'error') THEN 1 ELSE 0 END) AS parsed,
       SUM(CASE WHEN ce.status = 'ok' THEN 1 ELSE 0 END) AS executed_ok,
       {_CORRECT} AS correct,
       {_ratio(_CORRECT, "COUNT(g.id)")} AS pass_rate
FROM synthesis_run r
JOIN task t ON t.id = r.task_id
JOIN model m ON m.id = r.teacher_id
JOIN prompt_template pt ON pt.id = r.template_id
LEFT JOIN generation g ON g.synthesis_run_id = r.id
LEFT JOIN rationale ra ON ra.generation_id = g.id
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
LEFT JOIN current_execution ce ON ce.rationale_id = ra.id
GROUP BY r.id, r.name, t.name, r.split, m.name, pt.name, pt.version, pt.style,
         r.samples_per_problem, r.temperature, r.status""",
    ),
    (
        # Per task x split x teacher x template, over all runs: "which template gives the most
        # correct, executable programs on GSM8K train, per teacher?"
        "quality",
        f"""
SELECT task, split, teacher, template, template_version, style,
       COUNT(*) AS runs,
       {_bigint("SUM(generations)")} AS generations,
       {_bigint("SUM(failed)")} AS failed,
       {_bigint("SUM(parsed)")} AS parsed,
       {_bigint("SUM(executed_ok)")} AS executed_ok,
       {_bigint("SUM(correct)")} AS correct,
       {_ratio("SUM(correct)", "SUM(generations)")} AS pass_rate
FROM run_quality
GROUP BY task, split, teacher, template, template_version, style""",
    ),
    (
        # Per problem and run: samples (successful generations), correct ones, pass@k.
        "problem_coverage",
        f"""
WITH counts AS (
    SELECT g.synthesis_run_id, g.problem_id, COUNT(*) AS n,
           SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) AS c
    FROM generation g
    LEFT JOIN rationale ra ON ra.generation_id = g.id
    LEFT JOIN current_label cl ON cl.rationale_id = ra.id
    WHERE g.status = 'ok'
    GROUP BY g.synthesis_run_id, g.problem_id
)
SELECT counts.synthesis_run_id, counts.problem_id, t.name AS task, p.split, p.source_ref,
       counts.n AS samples, counts.c AS correct_samples,
       {_pass_at_k(1)} AS pass_at_1,
       {_pass_at_k(5)} AS pass_at_5,
       {_pass_at_k(10)} AS pass_at_10,
       CASE WHEN counts.c > 0 THEN 1 ELSE 0 END AS solved
FROM counts
JOIN problem p ON p.id = counts.problem_id
JOIN task t ON t.id = p.task_id""",
    ),
    (
        # Problems no teacher has solved yet, including those never attempted.
        "unsolved_problem",
        """
SELECT p.id AS problem_id, t.name AS task, p.split, p.source_ref, p.question, p.gold_answer,
       COUNT(ra.id) AS teacher_samples
FROM problem p
JOIN task t ON t.id = p.task_id
LEFT JOIN rationale ra ON ra.problem_id = p.id AND ra.origin = 'teacher'
LEFT JOIN current_label cl ON cl.rationale_id = ra.id
GROUP BY p.id, t.name, p.split, p.source_ref, p.question, p.gold_answer
HAVING SUM(CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END) = 0""",
    ),
    (
        # What goes wrong when programs run (their current execution), per task, run (NULL for
        # student and refinement output) and origin.
        "execution_error_breakdown",
        f"""
SELECT t.name AS task, g.synthesis_run_id, m.name AS model, ra.origin, e.status,
       COALESCE(e.error_type, '') AS error_type,
       COUNT(*) AS executions,
       {_float("COUNT(*)")} / SUM(COUNT(*)) OVER (PARTITION BY t.name, g.synthesis_run_id, ra.origin) AS share
FROM current_execution e
JOIN rationale ra ON ra.id = e.rationale_id
JOIN problem p ON p.id = ra.problem_id
JOIN task t ON t.id = p.task_id
LEFT JOIN generation g ON g.id = ra.generation_id
LEFT JOIN synthesis_run r ON r.id = g.synthesis_run_id
LEFT JOIN model m ON m.id = COALESCE(r.teacher_id, ra.model_id)
GROUP BY t.name, g.synthesis_run_id, m.name, ra.origin, e.status, COALESCE(e.error_type, '')""",
    ),
    (
        # Every refined rationale (depth 0) with its ancestors (depth 1, 2, ...): the refinement
        # chain back to the original. Rationales that were never refined have no rows here.
        "rationale_lineage",
        """
WITH RECURSIVE chain(rationale_id, ancestor_id, depth) AS (
    SELECT id, id, 0 FROM rationale WHERE parent_id IS NOT NULL
    UNION ALL
    SELECT chain.rationale_id, r.parent_id, chain.depth + 1
    FROM chain JOIN rationale r ON r.id = chain.ancestor_id
    WHERE r.parent_id IS NOT NULL
)
SELECT chain.rationale_id, chain.depth, chain.ancestor_id, a.origin, a.kind, a.answer,
       a.feedback, cl.verdict, e.status AS execution_status, e.error_type
FROM chain
JOIN rationale a ON a.id = chain.ancestor_id
LEFT JOIN current_label cl ON cl.rationale_id = a.id
LEFT JOIN current_execution e ON e.rationale_id = a.id""",
    ),
    (
        # One row per refinement: what was wrong with the parent and whether the child fixed it.
        # "How often does a refinement fix a NameError?" is a GROUP BY parent_error_type away.
        "refinement_outcome",
        """
SELECT child.id AS rationale_id, child.parent_id, child.problem_id,
       pe.status AS parent_execution_status, pe.error_type AS parent_error_type,
       pl.verdict AS parent_verdict, ce.status AS execution_status, cl.verdict,
       CASE WHEN cl.verdict = 'correct' THEN 1 ELSE 0 END AS fixed
FROM rationale child
JOIN rationale parent ON parent.id = child.parent_id
LEFT JOIN current_label pl ON pl.rationale_id = parent.id
LEFT JOIN current_execution pe ON pe.rationale_id = parent.id
LEFT JOIN current_label cl ON cl.rationale_id = child.id
LEFT JOIN current_execution ce ON ce.rationale_id = child.id
WHERE child.origin = 'refinement'""",
    ),
]
