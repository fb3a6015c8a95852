"""Reference rationales: GSM8K's solutions (CoT and derived programs) and the procedural problems'
own, imported as a reference run and verified by the verifiers that judge teacher output."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from curation.db.session import Database
from curation.ingestion.service import ingest_files, ingest_procedural
from curation.models import Rationale, RationaleOrigin, SynthesisRun
from curation.reference_programs import derive
from curation.references import import_gsm8k_references, import_procedural_references, verdicts_by_kind
from workers.sandbox import Limits, Sandbox
from workers.verification import verify


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(Limits(wall_seconds=2.0), in_flight=4) as box:
        yield box


def test_a_program_is_derived_from_the_calculator_marks() -> None:
    derivation = derive(
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
    )
    assert derivation.cot == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips altogether in April and May."
    )
    assert derivation.answer == "72"
    assert derivation.program == (
        "def solution():\n    clips_may = 48/2\n    clips_april_may = 48+clips_may\n"
        "    result = clips_april_may\n    return result\n"
    )
    namespace: dict[str, object] = {}
    exec(derivation.program, namespace)  # a fixed, known program: not model output
    assert namespace["solution"]() == 72  # type: ignore[operator]


def test_what_cannot_be_derived_is_said() -> None:
    assert derive("No marks here.\n#### 5").program is None
    assert derive("No marks here.\n#### 5").note == "no-annotations"
    unannotated = derive("Half is 10/2=<<10/2=5>>5, so 5 + 1 = 6.\n#### 6")
    assert unannotated.note == "answer-not-annotated" and unannotated.program is not None
    with pytest.raises(ValueError, match="####"):
        derive("no final line")


def _gsm8k_sample(shared_data: Path, tmp_path: Path, lines: int) -> tuple[Path, Path]:
    paths = []
    for split in ("train", "test"):
        path = tmp_path / f"{split}.jsonl"
        with (shared_data / "gsm8k" / f"{split}.jsonl").open() as source:
            path.write_text("".join(next(source) for _ in range(lines)))
        paths.append(path)
    return paths[0], paths[1]


def test_gsm8k_references_are_a_verified_reference_run(
    db: Database, sandbox: Sandbox, shared_data: Path, tmp_path: Path
) -> None:
    train, test = _gsm8k_sample(shared_data, tmp_path, 40)
    with db.transaction() as session:
        ingest_files(session, "gsm8k", [train, test])
    with db.transaction() as session:
        report = import_gsm8k_references(session, [train, test])
    assert (report.problems, report.cot) == (80, 80)
    expected_programs = sum(
        derive(json.loads(line)["answer"]).program is not None
        for path in (train, test)
        for line in path.read_text().splitlines()
    )
    assert report.programs == expected_programs == report.new_rationales - 80
    verify(db, sandbox, run_id=report.run_id)
    with db.read() as session:
        verdicts = {(kind, verdict): n for kind, verdict, _, n in verdicts_by_kind(session, report.run_id)}
        origins = set(session.execute(select(Rationale.origin).distinct()).scalars())
        run = session.get(SynthesisRun, report.run_id)
        assert run is not None and run.rationales_labelled == 80 + expected_programs
    assert origins == {RationaleOrigin.reference}
    assert verdicts[("cot", "correct")] == 80
    assert verdicts[("program", "correct")] + verdicts.get(("program", "incorrect"), 0) == expected_programs
    assert verdicts[("program", "correct")] >= 0.85 * expected_programs

    with db.transaction() as session:  # again: nothing new
        again = import_gsm8k_references(session, [train, test])
    assert again.run_id == report.run_id and again.new_rationales == 0


def test_procedural_references_all_verify(db: Database, sandbox: Sandbox) -> None:
    with db.transaction() as session:
        ingest_procedural(session, count=30, seed=3)
        ingest_procedural(session, count=10, seed=3, offset=30, split="test")
    with db.transaction() as session:
        report = import_procedural_references(session)
    assert (report.problems, report.cot, report.programs) == (40, 40, 40)
    verify(db, sandbox, run_id=report.run_id)
    with db.read() as session:
        verdicts = {(kind, verdict): n for kind, verdict, _, n in verdicts_by_kind(session, report.run_id)}
        total = session.execute(select(func.count(Rationale.id))).scalar_one()
    assert verdicts == {("cot", "correct"): 40, ("program", "correct"): 40} and total == 80


def test_the_quickstart_job_freezes_verified_reference_data(db: Database) -> None:
    from curation.cli.quickstart_job import _references
    from curation.snapshots.create import resolve_snapshot

    with db.transaction() as session:
        ingest_procedural(session, count=6, seed=0)
        ingest_procedural(session, count=2, seed=1, split="test")
    first = _references(db)
    assert "16 new, 16 labelled (16 correct)" in first and "quickstart-train@1: 12 members" in first
    again = _references(db)  # run again: nothing new, the same version
    assert "0 new, 0 labelled" in again and "quickstart-train@1: 12 members" in again
    with db.read() as session:
        manifest = resolve_snapshot(session, "quickstart-train").manifest
    assert manifest is not None and manifest["contamination"]["refused_problems"] == 0
