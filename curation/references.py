"""Reference rationales: training data that needs no online teacher.

Two sources, each a reference run (origin `reference`) of its task, with up to two rationales per
problem, the same reasoning in the two formats students are trained on (sample 0 the CoT text,
sample 1 the program):
- GSM8K's human solutions (teacher "human", template `gsm8k-reference`), read from the
  benchmark's JSONL files: the CoT text and a program derived from the calculator marks
  (reference_programs.py). A solution without marks has no program.
- The procedural problems' own reference CoT and program (teacher "procedural-generator",
  template `procedural-reference`), read from the stored problems.
Each generation holds the source text the rationale was derived from (GSM8K's whole solution,
the generator's text); the CoT generation's second stage (`answer_output`) is the final answer
the source states, which the answer verifier reads as it reads a teacher's stage-2 answer.
Rationales are written with their generations. Nothing here labels them: they are verified by
the same verifiers as teacher output (`workers.verification.verify` on the run), which the CLI
runs next. Importing again adds nothing (generations are keyed by run, problem and sample).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.errors import InputError, NotFoundError
from curation.ingestion.readers import read_jsonl
from curation.ingestion.rows import question_fingerprint
from curation.models import (
    Generation,
    ModelRole,
    Problem,
    Rationale,
    RationaleKind,
    RationaleOrigin,
    RunStatus,
    SynthesisRun,
    TemplateStyle,
)
from curation.reference_programs import derive
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories import templates as template_repo
from curation.repositories import verification as verification_repo

BATCH = 2_000
COT_SAMPLE, PROGRAM_SAMPLE = 0, 1
REFERENCE_BACKEND = "reference"


@dataclass(frozen=True)
class ReferenceSource:
    task: str
    teacher: str
    template: str
    description: str


GSM8K = ReferenceSource(
    "gsm8k",
    "human",
    "gsm8k-reference",
    "GSM8K's human-written solutions (the answer field): the CoT text without the calculator marks, "
    "and a program derived from the marks, one assignment each. Not a prompt.",
)
PROCEDURAL = ReferenceSource(
    "procedural",
    "procedural-generator",
    "procedural-reference",
    "The procedural problem generator's own reference CoT and program (curation/procedural.py). Not a prompt.",
)


@dataclass
class ReferenceReport:
    run_id: int
    task: str
    problems: int = 0
    cot: int = 0
    programs: int = 0
    new_rationales: int = 0
    unmatched_records: int = 0
    notes: Counter[str] = field(default_factory=Counter)  # why a program may fail, known before it runs


@dataclass(frozen=True)
class _Reference:
    problem_id: int
    source_text: str
    answer: str | None  # the final answer the source states apart from its text (GSM8K's ####)
    cot: str
    program: str | None


def _reference_run(session: Session, source: ReferenceSource) -> SynthesisRun:
    task = problem_repo.get_task(session, source.task)
    if task is None:
        raise NotFoundError(f"task {source.task!r} has no problems yet: ingest it before importing its references")
    teacher = model_repo.ensure_model(session, role=ModelRole.teacher, backend=REFERENCE_BACKEND, name=source.teacher)
    template = template_repo.ensure_template(
        session, name=source.template, style=TemplateStyle.reference, text=source.description
    )
    key = f"reference:{source.task}"
    run = run_repo.find_run_by_source(
        session, source=key, task_id=task.id, teacher_id=teacher.id, template_id=template.id
    )
    if run is None:
        run = SynthesisRun(
            name=f"{source.task} reference rationales",
            teacher_id=teacher.id,
            template_id=template.id,
            task_id=task.id,
            split=None,
            selection={"reference": source.task},
            samples_per_problem=2,
            temperature=0.0,
            source=key,
            params={"reference": True},
            status=RunStatus.running,
            started_at=utc_now(),
        )
        session.add(run)
        session.flush()
    return run


def _store(session: Session, run: SynthesisRun, references: Sequence[_Reference], report: ReferenceReport) -> None:
    rows: list[dict[str, Any]] = []
    bodies: dict[tuple[int, int], tuple[RationaleKind, str]] = {}
    for ref in references:
        rows.append(_generation(run.id, ref.problem_id, COT_SAMPLE, ref.source_text, ref.answer))
        bodies[(ref.problem_id, COT_SAMPLE)] = (RationaleKind.cot, ref.cot)
        report.cot += 1
        if ref.program is not None:
            rows.append(_generation(run.id, ref.problem_id, PROGRAM_SAMPLE, ref.source_text, None))
            bodies[(ref.problem_id, PROGRAM_SAMPLE)] = (RationaleKind.program, ref.program)
            report.programs += 1
    run_repo.insert_generations(session, rows)
    problem_ids = list({ref.problem_id for ref in references})
    missing = session.execute(
        select(Generation.id, Generation.problem_id, Generation.sample_index)
        .outerjoin(Rationale, Rationale.generation_id == Generation.id)
        .where(Generation.synthesis_run_id == run.id, Generation.problem_id.in_(problem_ids), Rationale.id.is_(None))
    ).all()
    rationale_rows = []
    for generation_id, problem_id, sample in missing:
        kind, body = bodies[(problem_id, sample)]
        rationale_rows.append(
            (problem_id, generation_id, run.teacher_id, sample, kind.value, RationaleOrigin.reference.value, body)
        )
    report.new_rationales += verification_repo.insert_rationales(session, rationale_rows)


def _generation(run_id: int, problem_id: int, sample: int, output: str, answer: str | None) -> dict[str, Any]:
    return {
        "synthesis_run_id": run_id,
        "problem_id": problem_id,
        "sample_index": sample,
        "status": "ok",
        "output": output,
        "answer_output": answer,
        "attempts": 1,
        "choice_order": None,
        "meta": None,
    }


def _finish(session: Session, run: SynthesisRun, report: ReferenceReport) -> None:
    counts = session.execute(select(Generation.problem_id).where(Generation.synthesis_run_id == run.id)).scalars()
    per_problem = Counter(counts)
    # A problem without a program has one sample: the run is complete at what it has (its
    # counters say what was generated, not problems x samples).
    run.problems_total = len(per_problem)
    run.generations_done = sum(per_problem.values())
    run.samples_per_problem = 2
    run.params = {**(run.params or {}), "programs": sum(1 for n in per_problem.values() if n > 1)}
    # Everything a reference run generates is here now; its labels come with verification, and
    # `rationales_labelled` counts them as for any run.
    run.status = RunStatus.completed
    run.finished_at = run.finished_at or utc_now()
    report.problems = len(per_problem)


def _batched(items: Iterable[_Reference]) -> Iterator[list[_Reference]]:
    batch: list[_Reference] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def import_gsm8k_references(session: Session, paths: Sequence[Path]) -> ReferenceReport:
    """GSM8K's solutions from its JSONL files (train and test), onto the stored GSM8K problems,
    matched by question fingerprint (of several stored copies of one question, the n-th record
    goes to the n-th copy). A record whose question is not stored is counted, not an error; a
    record without a `#### n` line is an error naming it."""
    run = _reference_run(session, GSM8K)
    report = ReferenceReport(run_id=run.id, task=GSM8K.task)
    task = problem_repo.get_task(session, GSM8K.task)
    assert task is not None
    stored: dict[str, list[int]] = defaultdict(list)
    for problem_id, content_hash in session.execute(
        select(Problem.id, Problem.content_hash).where(Problem.task_id == task.id).order_by(Problem.id)
    ):
        stored[content_hash].append(problem_id)
    seen: Counter[str] = Counter()

    def references() -> Iterator[_Reference]:
        for path in paths:
            if not path.is_file():
                raise InputError(str(path), "no such file")
            for record in read_jsonl(path):
                question, solution = record.data.get("question"), record.data.get("answer")
                if not isinstance(question, str) or not isinstance(solution, str):
                    raise InputError(record.location, 'a GSM8K record needs text fields "question" and "answer"')
                fingerprint = question_fingerprint(question)
                copies = stored.get(fingerprint)
                if not copies:
                    report.unmatched_records += 1
                    continue
                try:
                    derivation = derive(solution)
                except ValueError as error:
                    raise InputError(record.location, str(error)) from None
                if derivation.note:
                    report.notes[derivation.note] += 1
                problem_id = copies[seen[fingerprint] % len(copies)]
                seen[fingerprint] += 1
                yield _Reference(problem_id, solution, derivation.answer, derivation.cot, derivation.program)

    for batch in _batched(references()):
        _store(session, run, batch, report)
    if not seen:
        raise InputError(
            ", ".join(map(str, paths)), "no record matches a stored GSM8K problem: ingest the files first"
        )
    _finish(session, run, report)
    return report


def import_procedural_references(session: Session, task: str = "procedural") -> ReferenceReport:
    """The stored procedural problems' reference CoT (problem.reference_rationale) and program
    (problem.meta["reference_program"])."""
    source = ReferenceSource(task, PROCEDURAL.teacher, f"{task}-reference", PROCEDURAL.description)
    run = _reference_run(session, source)
    report = ReferenceReport(run_id=run.id, task=task)
    task_row = problem_repo.get_task(session, task)
    assert task_row is not None
    after = 0
    while True:
        rows = session.execute(
            select(Problem.id, Problem.reference_rationale, Problem.meta)
            .where(Problem.task_id == task_row.id, Problem.id > after)
            .order_by(Problem.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        after = rows[-1][0]
        batch = []
        for problem_id, cot, meta in rows:
            program = (meta or {}).get("reference_program")
            if not cot:
                report.notes["no-reference"] += 1
                continue
            source_text = cot if not program else f"{cot}\n\n{program}"
            # No stated answer beside the text: the verifier reads it from the CoT ("The answer is 42.").
            batch.append(_Reference(problem_id, source_text, None, cot, program))
        _store(session, run, batch, report)
    if report.cot == 0:
        raise NotFoundError(f"no problem of task {task!r} carries a reference rationale")
    _finish(session, run, report)
    return report


def verdicts_by_kind(session: Session, run_id: int) -> list[tuple[str, str, str, int]]:
    """(kind, verdict, execution status or '', count) of a run's rationales, by their current label."""
    from curation.models import Execution, Label

    latest = select(Label.rationale_id, func.max(Label.id).label("label_id")).group_by(Label.rationale_id).subquery()
    rows = session.execute(
        select(Rationale.kind, Label.verdict, Execution.status, func.count())
        .join(Generation, Generation.id == Rationale.generation_id)
        .join(latest, latest.c.rationale_id == Rationale.id)
        .join(Label, Label.id == latest.c.label_id)
        .outerjoin(Execution, Execution.id == Label.execution_id)
        .where(Generation.synthesis_run_id == run_id)
        .group_by(Rationale.kind, Label.verdict, Execution.status)
        .order_by(Rationale.kind, Label.verdict, Execution.status)
    ).all()
    return [(kind.value, verdict.value, status.value if status else "", n) for kind, verdict, status, n in rows]
