"""Importing the Program-of-Thoughts GSM8K programs (real Codex outputs) as a synthesis run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.errors import InputError, NotFoundError
from curation.ingestion.service import ingest_files
from curation.models import Generation, PromptTemplate, RunStatus, SynthesisRun, TemplateStyle
from curation.teacher_outputs import OutputFields, import_teacher_outputs

POT = "teacher_outputs/program_of_thoughts/gsm8K_s0_e-1_11_17_10_20.jsonl"


@pytest.fixture
def gsm8k_test(db: Database, shared_data: Path) -> Database:
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [shared_data / "gsm8k/test.jsonl"])
    return db


def test_program_of_thoughts_import(gsm8k_test: Database, shared_data: Path) -> None:
    db = gsm8k_test
    with db.transaction() as session:
        report = import_teacher_outputs(
            session,
            shared_data / POT,
            task="gsm8k",
            split="test",
            teacher="code-davinci-002",
            style=TemplateStyle.program,
        )
    assert (report.records, report.problems, report.generations, report.new_generations) == (
        1318,
        1318,
        1318,
        1318,
    )
    with db.read() as session:
        run = session.get(SynthesisRun, report.run_id)
        assert run is not None and run.status is RunStatus.completed and run.problems_total == 1318
        template = session.get(PromptTemplate, run.template_id)
        assert template is not None and template.style is TemplateStyle.program
        assert template.text.lstrip().startswith("Question: Janet")  # the file's own few-shot prompt
        first = session.execute(select(Generation).order_by(Generation.id).limit(1)).scalar_one()
        assert first.output is not None and first.output.startswith("total_eggs = 16")
        assert first.meta == {"answer": 18.0, "executed": 18.0}

    with db.transaction() as session:
        again = import_teacher_outputs(
            session,
            shared_data / POT,
            task="gsm8k",
            split="test",
            teacher="code-davinci-002",
            style=TemplateStyle.program,
        )
    assert (again.run_id, again.created_run, again.new_generations) == (report.run_id, False, 0)
    with db.read() as session:
        assert session.execute(select(func.count(Generation.id))).scalar_one() == 1318
        assert session.execute(select(func.count(SynthesisRun.id))).scalar_one() == 1


def test_lists_of_outputs_become_samples_and_refs_match_by_source_ref(gsm8k_test: Database, tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text(
        json.dumps({"ref": "test:0", "outputs": ["a", "b", "c"], "cost": 1})
        + "\n"
        + json.dumps({"ref": "test:1", "outputs": "d"})
        + "\n"
        + json.dumps({"ref": "test:0", "outputs": ["e"]})
        + "\n"
    )
    with gsm8k_test.transaction() as session:
        report = import_teacher_outputs(
            session,
            path,
            task="gsm8k",
            teacher="t",
            style=TemplateStyle.zero_shot_cot,
            fields=OutputFields(output="outputs", problem_ref="ref"),
        )
    assert (report.problems, report.generations) == (2, 5)
    with gsm8k_test.read() as session:
        samples = session.execute(
            select(Generation.output, Generation.sample_index).order_by(Generation.problem_id, Generation.sample_index)
        ).all()
    assert [tuple(s) for s in samples] == [("a", 0), ("b", 1), ("c", 2), ("e", 3), ("d", 0)]


def test_unmatched_and_malformed_records_name_their_line(gsm8k_test: Database, tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    path.write_text(json.dumps({"question": "Not a GSM8K question at all?", "generated": "x"}) + "\n")
    with (
        pytest.raises(InputError, match=r"outputs\.jsonl:1: no stored problem matches"),
        gsm8k_test.transaction() as s,
    ):
        import_teacher_outputs(s, path, task="gsm8k", teacher="t", style=TemplateStyle.program)
    # Skipping the unmatched records of a file that matches nothing leaves nothing: an error, not an empty run.
    with (
        pytest.raises(InputError, match=r"outputs\.jsonl: nothing to import: none of its 1 records matches"),
        gsm8k_test.transaction() as s,
    ):
        import_teacher_outputs(s, path, task="gsm8k", teacher="t", style=TemplateStyle.program, skip_unmatched=True)

    path.write_text('{"question": "x", "generated": 5}\n{"question": ')
    with pytest.raises(InputError, match=r"outputs\.jsonl:2: malformed JSON"), gsm8k_test.transaction() as s:
        import_teacher_outputs(s, path, task="gsm8k", teacher="t2", style=TemplateStyle.program)
    with pytest.raises(NotFoundError, match="ingest it before"), gsm8k_test.transaction() as s:
        import_teacher_outputs(s, path, task="svamp", teacher="t", style=TemplateStyle.program)
    with gsm8k_test.read() as session:
        # the failed imports left nothing behind
        assert session.execute(select(func.count(SynthesisRun.id))).scalar_one() == 0
