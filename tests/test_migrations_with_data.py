"""Every migration carries the data it finds: walked up and down one revision at a time on a
database that holds rows written at each revision, on SQLite and PostgreSQL.

At each revision the test writes a full set of rows (a task, problems, models, a completed
synthesis run with generations, rationales, executions, labels, a refinement, a snapshot, a
training run, an evaluation, a batch lease), into whichever tables and columns that revision
has. Then it steps down one revision and up again, comparing every table's row count: a step
keeps every row of the tables that exist on both sides. At the head it checks what the data
migrations filled in (0006: the labelled counter of runs labelled before 0003 added it; 0007:
every snapshot sealed and guarded by the database).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.script import ScriptDirectory

from curation.db import migrations
from curation.db.session import Database
from tests.conftest import PostgresFactory


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Database:
    if request.param == "sqlite":
        return Database(f"sqlite:///{tmp_path / 'walk.db'}")
    factory: PostgresFactory = request.getfixturevalue("postgres_factory")
    return Database(factory.create("migration_walk"))


def _revisions() -> list[tuple[str, str | None]]:
    """(revision, the one below it) from the first to the head; the history must be one line."""
    script = ScriptDirectory(str(migrations.migrations_dir()))
    assert len(script.get_heads()) == 1, f"the history has several heads: {script.get_heads()}"
    walk = []
    for revision in reversed(list(script.walk_revisions())):
        below = revision.down_revision
        assert below is None or isinstance(below, str), f"{revision.revision} merges {below}"
        walk.append((revision.revision, below))
    return walk


def _tables(connection: sa.Connection) -> list[str]:
    return sorted(set(sa.inspect(connection).get_table_names()) - {"alembic_version"})


def _counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {
            table: int(connection.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one())
            for table in _tables(connection)
        }


def _view_counts(db: Database) -> dict[str, int]:
    with db.engine.connect() as connection:
        return {
            view: int(connection.execute(sa.text(f'SELECT COUNT(*) FROM "{view}"')).scalar_one())
            for view in sorted(sa.inspect(connection).get_view_names())
        }


class Seeder:
    """Writes rows into the tables as they are at the current revision: each row is given as the
    newest schema would take it, and the columns the revision does not have are left out."""

    def __init__(self, connection: sa.Connection, tag: str) -> None:
        self.connection, self.tag = connection, tag
        self.metadata = sa.MetaData()
        self.names = set(_tables(connection))
        self.now = datetime.now(UTC)

    def insert(self, table: str, **values: Any) -> int | None:
        if table not in self.names:
            return None
        reflected = sa.Table(table, self.metadata, autoload_with=self.connection)
        present = {k: v for k, v in values.items() if k in reflected.c}
        if "created_at" in reflected.c:
            present.setdefault("created_at", self.now)
        result = self.connection.execute(sa.insert(reflected).values(**present))
        key = result.inserted_primary_key
        return int(key[0]) if key and key[0] is not None and "id" in reflected.c else None

    def seed(self) -> None:
        tag, insert = self.tag, self.insert
        teacher = insert("model", role="teacher", backend="openai", name=f"teacher-{tag}", revision="")
        student = insert("model", role="student", backend="transformers", name=f"student-{tag}", revision="")
        # The embedded teacher's name as each revision writes it (0006 renamed it).
        embedded = "SmolLM2-135M-Instruct-Q4_1-dequantised" if tag >= "0006" else "SmolLM2-135M-Instruct"
        insert("model", role="teacher", backend="embedded", name=embedded, revision=tag)
        template = insert(
            "prompt_template", name=f"pad-{tag}", version=1, style="program", text="{{ question }}",
            content_hash=f"{tag:0<64}"[:64],
        )  # fmt: skip
        task = insert("task", name=f"task-{tag}", answer_type="number")
        insert("split", task_id=task, name="train", purpose="train")
        insert("split", task_id=task, name="test", purpose="eval")
        problems = []
        for n in range(2):
            problems.append(
                insert("problem", task_id=task, split="train", source_ref=f"{tag}-{n}", question=f"q {n}",
                       gold_answer_raw="1", gold_answer="1", content_hash=f"{tag}{n}".ljust(64, "0"))
            )  # fmt: skip
        run = insert(
            "synthesis_run", teacher_id=teacher, template_id=template, task_id=task, split="train",
            samples_per_problem=2, temperature=0.7, status="completed", problems_total=2, generations_done=3,
            generations_failed=1, rationales_labelled=3, params={"verifier_version": "1", "batch_size": 8},
        )  # fmt: skip
        rationales = []
        for index, (problem, sample, ok) in enumerate([(0, 0, True), (0, 1, True), (1, 0, True), (1, 1, False)]):
            generation = insert(
                "generation", synthesis_run_id=run, problem_id=problems[problem], sample_index=sample,
                status="ok" if ok else "failed", output="def solution():\n    return 1" if ok else None,
                attempts=1, error=None if ok else "HTTP 500",
            )  # fmt: skip
            if ok:
                rationale = insert(
                    "rationale", problem_id=problems[problem], generation_id=generation, model_id=teacher,
                    sample_index=sample, kind="program", origin="teacher", body=f"program {index}",
                )  # fmt: skip
                rationales.append(rationale)
        for rationale, status in zip(rationales, ("ok", "ok", "error"), strict=True):
            execution = insert(
                "execution", rationale_id=rationale, status=status, value="1" if status == "ok" else None,
                value_type="int" if status == "ok" else None, error_type=None if status == "ok" else "NameError",
                limits_hash="limits", output_truncated=False,
            )  # fmt: skip
            insert(
                "label", rationale_id=rationale, execution_id=execution, verifier="program", verifier_version="1",
                verdict="correct" if status == "ok" else "error",
            )  # fmt: skip
        refined = insert(
            "rationale", problem_id=problems[1], parent_id=rationales[2], model_id=student, sample_index=0,
            kind="program", origin="refinement", body="fixed", feedback="NameError", refinement_round=1,
        )  # fmt: skip
        insert("label", rationale_id=refined, verifier="program", verifier_version="1", verdict="correct")
        if tag >= "0007":  # reference rationales (a downgrade keeps them, as teacher rationales)
            insert(
                "rationale", problem_id=problems[0], model_id=teacher, sample_index=0, kind="cot",
                origin="reference", body="1 + 0 = 1.",
            )  # fmt: skip
        snapshot = insert(
            "snapshot", name=f"snapshot-{tag}", version=1, spec={"runs": [run]}, export_format="jsonl",
            content_sha256="f" * 64, row_count=2, kind="training",
        )  # fmt: skip
        # As a snapshot is made: unsealed, its members, then sealed (from 0007 the triggers refuse
        # members added to a sealed snapshot).
        for position, rationale in enumerate(rationales[:2]):
            insert(
                "snapshot_member", snapshot_id=snapshot, rationale_id=rationale, position=position,
                problem_id=problems[0], content_sha256="e" * 64,
            )  # fmt: skip
        if "sealed" in sa.Table("snapshot", self.metadata, autoload_with=self.connection).c:
            self.connection.execute(sa.text("UPDATE snapshot SET sealed = TRUE WHERE id = :id"), {"id": snapshot})
        training = insert(
            "training_run", snapshot_id=snapshot, base_model_id=student, config={"lr": 1e-4}, status="running",
            lease_holder="host/1/x", lease_expires_at=self.now,
        )  # fmt: skip
        student_run = None
        if tag >= "0011":  # an evaluation's own run, its template in the student's prompt format
            student_template = insert(
                "prompt_template", name=f"student-pad-{tag}", version=1, style="student", text="{{ question }}\n",
                content_hash=f"s{tag:0<63}"[:64],
            )  # fmt: skip
            student_run = insert(
                "synthesis_run", teacher_id=student, template_id=student_template, task_id=task, split="test",
                samples_per_problem=1, temperature=0.0, status="completed", problems_total=2, generations_done=0,
                generations_failed=0, rationales_labelled=0, params={"decoding": {"method": "greedy"}},
            )  # fmt: skip
            # Its output on a problem (from 0012 no teacher view counts it as a teacher's attempt).
            insert(
                "generation", synthesis_run_id=student_run, problem_id=problems[0], sample_index=0, status="ok",
                output="def solution():\n    return 1", attempts=1,
            )  # fmt: skip
        evaluation = insert(
            "evaluation", model_id=student, training_run_id=training, task_id=task, split="test", status="completed",
            problems=2, correct=1, incorrect=1, unparseable=0, errors=0, executed_ok=2, accuracy=0.5,
            synthesis_run_id=student_run, metrics={"student_tokens": 12, "sandbox_programs": 2, "wall_seconds": 0.5},
        )  # fmt: skip
        for evaluated in problems:
            insert(
                "rationale", problem_id=evaluated, evaluation_id=evaluation, model_id=student, sample_index=0,
                kind="program", origin="student", body="def solution():\n    return 1",
            )  # fmt: skip
        insert(
            "batch_lease", synthesis_run_id=run, batch_key=f"{tag:0<64}"[:64], holder="host/1/x", expires_at=self.now
        )


def _seed(db: Database, tag: str) -> None:
    with db.engine.begin() as connection:
        Seeder(connection, tag).seed()


def test_every_migration_keeps_the_rows_it_finds_up_and_down(empty_db: Database) -> None:
    db = empty_db
    walk = _revisions()
    for revision, below in walk:
        before = _counts(db)
        migrations.upgrade(db, revision)
        after = _counts(db)
        assert {table: after[table] for table in before} == before, f"upgrade to {revision} lost rows"
        _seed(db, revision)
        seeded, seeded_views = _counts(db), _view_counts(db)

        migrations.downgrade(db, below or "base")
        down = _counts(db)
        assert down == {table: seeded[table] for table in down}, f"downgrade from {revision} lost rows"
        migrations.upgrade(db, revision)
        up = _counts(db)
        assert up == {table: seeded[table] if table in down else 0 for table in seeded}, (
            f"{revision} down and up again lost rows"
        )
        if up == seeded:  # nothing was in a table the step drops: the views read the same rows
            assert _view_counts(db) == seeded_views, f"{revision} down and up again changed the views"
    assert migrations.current_revision(db) == walk[-1][0]

    with db.engine.connect() as connection:
        runs = connection.execute(
            sa.text(
                "SELECT r.id, r.rationales_labelled, (SELECT COUNT(DISTINCT l.rationale_id) FROM label l "
                "JOIN rationale ra ON ra.id = l.rationale_id JOIN generation g ON g.id = ra.generation_id "
                "WHERE g.synthesis_run_id = r.id) FROM synthesis_run r ORDER BY r.id"
            )
        ).all()
        embedded = connection.execute(sa.text("SELECT DISTINCT name FROM model WHERE backend = 'embedded'")).all()
    # The rows written at the first revision went with its downgrade to base; from 0011 each
    # revision seeds an evaluation's run too (no generations, nothing labelled).
    student_runs = sum(1 for revision, _ in walk if revision >= "0011")
    assert len(runs) == len(walk) - 1 + student_runs
    runs = [r for r in runs if r[1] or r[2]]
    assert [(labelled, counted) for _, labelled, counted in runs] == [(3, 3)] * (len(walk) - 1), (
        "every run labelled before 0003 counted its labels at 0006"
    )
    assert embedded == [("SmolLM2-135M-Instruct-Q4_1-dequantised",)]

    with db.engine.connect() as connection:
        quality_runs = connection.execute(sa.text("SELECT synthesis_run_id FROM run_quality")).scalars().all()
        by_style = connection.execute(
            sa.text("SELECT pt.style, r.id FROM synthesis_run r JOIN prompt_template pt ON pt.id = r.template_id")
        ).all()
    # From 0012 an evaluation's run is no teacher run (the one seeded at 0011 became a `program`
    # run when 0011 went down and up).
    assert sorted(quality_runs) == sorted(i for style, i in by_style if style != "student")
    assert sum(1 for style, _ in by_style if style == "student") == student_runs - 1

    with db.engine.connect() as connection:
        unsealed = connection.execute(sa.text("SELECT COUNT(*) FROM snapshot WHERE NOT sealed")).scalar_one()
        assert unsealed == 0, "0007 seals the snapshots made before it"
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM snapshot_member"))
    db.dispose()
