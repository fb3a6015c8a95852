"""Verification jobs on both databases: parse, execute, label; idempotent; versioned."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from curation.answers.verdict import VERIFIER_VERSION
from curation.db.session import Database
from curation.ingestion.service import ingest_files
from curation.models import Execution, Label, Rationale, RationaleKind, TemplateStyle
from curation.teacher_outputs import OutputFields, import_teacher_outputs
from workers.sandbox import Limits, Sandbox
from workers.verification import verify

POT = "teacher_outputs/program_of_thoughts/gsm8K_s0_e-1_11_17_10_20.jsonl"


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    # A CPU-time budget, not a wall clock, decides: #856 needs 4.7 s of CPU (four nested loops over range(87)) and
    # #826 2.7 s, and beside another test process on 2 cores their wall time passed 10 s (CI: 941, not 942).
    # CPU time does not grow with the load; the wall clock is only the backstop for a program that sleeps.
    with Sandbox(Limits(wall_seconds=120.0, cpu_seconds=10.0), in_flight=os.cpu_count() or 2) as box:
        yield box


def _count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def _program_run(db: Database, shared_data: Path, tmp_path: Path, records: int) -> int:
    lines = (shared_data / POT).read_text().splitlines()[: records + 1]  # +1: the prompt record
    path = tmp_path / "pot.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        report = import_teacher_outputs(
            session, path, task="gsm8k", split="test", teacher="code-davinci-002", style=TemplateStyle.program
        )
    return report.run_id


def test_verify_a_program_run_twice_and_with_a_new_version(
    db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path
) -> None:
    run_id = _program_run(db, shared_data, tmp_path, records=120)
    first = verify(db, sandbox, run_id=run_id, verifier_version="1")  # labels made before version 2
    assert (first.parsed, first.executed, first.labelled) == (120, 120, 120)
    assert sum(first.verdicts.values()) == 120 and first.verdicts["correct"] > 70

    again = verify(db, sandbox, run_id=run_id, verifier_version="1")
    assert (again.parsed, again.executed, again.labelled) == (0, 0, 0)
    assert (_count(db, Rationale), _count(db, Execution), _count(db, Label)) == (120, 120, 120)

    assert VERIFIER_VERSION == "5"
    second_version = verify(db, sandbox, run_id=run_id)
    assert (second_version.executed, second_version.reused_executions, second_version.labelled) == (0, 120, 120)
    assert _count(db, Label) == 240  # the version-1 labels are kept
    with db.read() as session:
        versions = session.execute(text("SELECT DISTINCT verifier_version FROM current_label")).scalars().all()
        quality = session.execute(text("SELECT generations, correct FROM run_quality")).one()
    assert versions == [VERIFIER_VERSION]
    assert (quality.generations, quality.correct) == (120, first.verdicts["correct"])


def test_new_limits_mean_new_executions(db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path) -> None:
    run_id = _program_run(db, shared_data, tmp_path, records=20)
    verify(db, sandbox, run_id=run_id)
    report = verify(db, sandbox, run_id=run_id, limits=Limits(wall_seconds=5.0), verifier_version="long-timeout")
    assert (report.executed, report.labelled) == (20, 20)
    assert _count(db, Execution) == 40


def test_a_racing_duplicate_batch_adds_nothing(
    db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path
) -> None:
    """Two workers verifying the same rationales at once: the second one's writes are no-ops."""
    from curation.repositories.verification import pending_rationales
    from workers.verification import VERIFIERS, VerificationReport, _run_programs, _store

    run_id = _program_run(db, shared_data, tmp_path, records=30)
    verify(db, sandbox, run_id=run_id, rationale_ids=[])  # parses only: the rationale list is empty
    with db.read() as session:
        pending = pending_rationales(session, verifier_version="1", verifiers=VERIFIERS, run_id=run_id)
    first, second = VerificationReport(), VerificationReport()
    # Both read before either wrote: both run the programs; the second one's writes are no-ops.
    first_rows = _run_programs(db, sandbox, pending, sandbox.limits, first)
    second_rows = _run_programs(db, sandbox, pending, sandbox.limits, second)
    for rows, report in ((first_rows, first), (second_rows, second)):
        with db.transaction() as session:
            _store(session, pending, rows, sandbox.limits, "1", report)
    assert (first.executed, second.executed, first.labelled, second.labelled) == (30, 30, 30, 0)
    assert (_count(db, Execution), _count(db, Label)) == (30, 30)


def test_cot_rationales_are_answer_checked(db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path) -> None:
    """A zero-shot-CoT run in two stages, imported: rationale text plus the stage-two answer."""
    outputs = tmp_path / "zs_cot.jsonl"
    outputs.write_text(
        "\n".join(
            json.dumps(record)
            for record in [
                {"ref": "test:0", "rationale": "16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars.", "stage2": " 18."},
                {"ref": "test:1", "rationale": "2 bolts blue, 1 white, 3 in total.", "stage2": " 4 bolts"},
                {"ref": "test:2", "rationale": "I cannot tell.", "stage2": " unclear."},
            ]
        )
        + "\n"
    )
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        run = import_teacher_outputs(
            session,
            outputs,
            task="gsm8k",
            teacher="gpt-3",
            style=TemplateStyle.zero_shot_cot,
            fields=OutputFields(output="rationale", problem_ref="ref", answer_output="stage2"),
        )
    report = verify(db, sandbox, run_id=run.run_id)
    assert (report.executed, dict(report.verdicts)) == (0, {"correct": 1, "incorrect": 1, "unparseable": 1})
    with db.read() as session:
        rows = session.execute(
            select(Rationale.kind, Rationale.answer, Label.verifier, Label.details)
            .join(Label, Label.rationale_id == Rationale.id)
            .order_by(Rationale.id)
        ).all()
    assert [(r.kind, r.answer, r.verifier) for r in rows] == [
        (RationaleKind.cot, "18", "answer-match"),
        (RationaleKind.cot, "4", "answer-match"),
        (RationaleKind.cot, None, "answer-match"),
    ]
    assert rows[0].details["rule"] == "zero-shot-cot-stage-2"


def test_verify_pending_covers_every_run(db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path) -> None:
    run_id = _program_run(db, shared_data, tmp_path, records=10)
    verify(db, sandbox, run_id=run_id, rationale_ids=[])  # parse only
    report = verify(db, sandbox)  # everything not yet verified
    assert report.labelled == 10


@pytest.mark.slow
def test_program_of_thoughts_gsm8k_execution_correct_rate(db: Database, sandbox: Sandbox, shared_data: Path) -> None:
    """All 1,318 real Codex programs: the quality view shows the run's execution-correct rate."""
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
        run = import_teacher_outputs(
            session, shared_data / POT, task="gsm8k", split="test", teacher="code-davinci-002",
            style=TemplateStyle.program,
        )  # fmt: skip
    verify(db, sandbox, run_id=run.run_id)
    with db.read() as session:
        row = session.execute(text("SELECT * FROM run_quality WHERE synthesis_run_id = :id"), {"id": run.run_id}).one()
        errors: dict[str, int] = dict(
            session.execute(
                text("SELECT error_type, executions FROM execution_error_breakdown WHERE status <> 'ok'")
            ).all()
        )
    assert (row.generations, row.rationales, row.labelled) == (1318, 1318, 1318)
    # Program-of-Thoughts reports 71.6%; at a 2 s limit (bench/sandbox.py) 941 of these are correct.
    assert row.correct == 942 and row.pass_rate == pytest.approx(942 / 1318)
    assert row.executed_ok == 1304
    assert errors == {"NameError": 11, "SyntaxError": 1, "CPUTimeLimitExceeded": 2}  # two endless loops
