"""Importing published teacher outputs (JSONL) as a synthesis run, so they are curated like fresh ones.

Each record names its problem, by a reference field (the problem's source_ref) or by its question
text (matched on the question fingerprint within the task), and carries one output or a list of
outputs (one generation per element, sample_index in list order). Other fields are kept in
`generation.meta`. A record with no question but a `prompt` field is the run's prompt (the
Program-of-Thoughts files open with their few-shot prompt): it becomes the run's template text.

Importing the same file again adds nothing: the run is keyed by the file's sha256 with the task,
teacher and template, and generations by (run, problem, sample_index).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.db.base import utc_now
from curation.db.text import storable
from curation.errors import CurationError, InputError, NotFoundError, SourceLocation
from curation.ingestion.readers import RawRecord, read_jsonl
from curation.ingestion.rows import question_fingerprint
from curation.models import ModelRole, Problem, RunStatus, SynthesisRun, TemplateStyle
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories import templates as template_repo

BATCH_SIZE = 1_000
UNKNOWN_PROMPT = "(prompt not recorded with the imported outputs)"


@dataclass(frozen=True)
class OutputFields:
    """Which record fields hold what."""

    question: str = "question"
    output: str = "generated"
    problem_ref: str | None = None
    answer_output: str | None = None


@dataclass
class ImportReport:
    run_id: int
    created_run: bool
    records: int = 0
    generations: int = 0
    new_generations: int = 0
    problems: int = 0
    unmatched: int = 0
    unmatched_examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Matched:
    location: SourceLocation
    problem_id: int
    outputs: list[str]
    answer_output: str | None
    meta: dict[str, Any] | None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _outputs(record: RawRecord, fields: OutputFields) -> list[str]:
    if fields.output not in record.data:
        raise InputError(record.location, f'missing output field "{fields.output}"')
    value = record.data[fields.output]
    outputs = value if isinstance(value, list) else [value]
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise InputError(record.location, f'"{fields.output}" should be text or a non-empty list of texts')
    return [storable(o) for o in outputs]  # published files are input like any other: no NUL


def _find_prompt(path: Path, fields: OutputFields) -> str | None:
    for record in read_jsonl(path):
        if _is_prompt_record(record, fields):
            prompt = record.data["prompt"]
            return prompt if isinstance(prompt, str) else None
    return None


def _is_prompt_record(record: RawRecord, fields: OutputFields) -> bool:
    keys = record.data.keys()
    names_problem = fields.question in keys or (fields.problem_ref is not None and fields.problem_ref in keys)
    return not names_problem and "prompt" in keys


def import_teacher_outputs(
    session: Session,
    path: Path,
    *,
    task: str,
    teacher: str,
    style: TemplateStyle,
    split: str | None = None,
    fields: OutputFields | None = None,
    backend: str = "import",
    template_name: str | None = None,
    template_text: str | None = None,
    run_name: str | None = None,
    skip_unmatched: bool = False,
) -> ImportReport:
    fields = fields or OutputFields()
    if not path.is_file():
        raise InputError(str(path), "no such file")
    task_row = problem_repo.get_task(session, task)
    if task_row is None:
        raise NotFoundError(f"task {task!r} has no problems yet: ingest it before importing outputs for it")
    teacher_row = model_repo.ensure_model(session, role=ModelRole.teacher, backend=backend, name=teacher)
    text = template_text or _find_prompt(path, fields) or UNKNOWN_PROMPT
    template = template_repo.ensure_template(
        session, name=template_name or f"{teacher}-{style.value}", style=style, text=text
    )
    source = f"sha256:{_file_sha256(path)}"
    run = run_repo.find_run_by_source(
        session, source=source, task_id=task_row.id, teacher_id=teacher_row.id, template_id=template.id
    )
    created = run is None
    if run is None:
        run = SynthesisRun(
            name=run_name or f"import {path.name}",
            teacher_id=teacher_row.id,
            template_id=template.id,
            task_id=task_row.id,
            split=split,
            selection={"path": str(path), "fields": fields.__dict__},
            source=source,
            status=RunStatus.running,
            started_at=utc_now(),
        )
        session.add(run)
        session.flush()
    report = ImportReport(run_id=run.id, created_run=created)

    next_sample: dict[int, int] = defaultdict(int)
    for batch in _batches(_matched_records(session, path, task_row.id, split, fields, report, skip_unmatched)):
        rows = []
        for matched in batch:
            for output in matched.outputs:
                rows.append(
                    {
                        "synthesis_run_id": run.id,
                        "problem_id": matched.problem_id,
                        "sample_index": next_sample[matched.problem_id],
                        "status": "ok",
                        "output": output,
                        "answer_output": matched.answer_output,
                        "attempts": 1,
                        "meta": matched.meta,
                    }
                )
                next_sample[matched.problem_id] += 1
        report.generations += len(rows)
        report.new_generations += run_repo.insert_generations(session, rows)

    report.problems = len(next_sample)
    run.problems_total = report.problems
    run.generations_done = report.generations
    run.samples_per_problem = max(next_sample.values(), default=1)
    run.status = RunStatus.completed
    run.finished_at = run.finished_at or utc_now()
    return report


def _batches(items: Iterator[_Matched]) -> Iterator[list[_Matched]]:
    batch: list[_Matched] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def _matched_records(
    session: Session,
    path: Path,
    task_id: int,
    split: str | None,
    fields: OutputFields,
    report: ImportReport,
    skip_unmatched: bool,
) -> Iterator[_Matched]:
    """Records paired with their problem ids, looked up a batch at a time."""
    pending: list[RawRecord] = []

    def resolve() -> Iterator[_Matched]:
        lookup = _lookup_problems(session, task_id, split, fields, pending)
        for record in pending:
            key = _problem_key(record, fields)
            candidates = lookup.get(key, [])
            if len(candidates) > 1:
                ids = ", ".join(f"#{pid} ({psplit})" for pid, psplit in candidates[:4])
                raise InputError(
                    record.location,
                    f"the question matches several problems ({ids}); pass --split or a problem reference field",
                )
            if not candidates:
                if not skip_unmatched:
                    raise InputError(
                        record.location,
                        "no stored problem matches this record"
                        + (f" in split {split}" if split else "")
                        + "; ingest the problems first, or pass --skip-unmatched",
                    )
                report.unmatched += 1
                if len(report.unmatched_examples) < 5:
                    report.unmatched_examples.append(str(record.location))
                continue
            used = {fields.question, fields.output, fields.problem_ref, fields.answer_output}
            answer_output = record.data.get(fields.answer_output) if fields.answer_output else None
            yield _Matched(
                location=record.location,
                problem_id=candidates[0][0],
                outputs=_outputs(record, fields),
                answer_output=storable(answer_output) if isinstance(answer_output, str) else None,
                meta={k: v for k, v in record.data.items() if k not in used} or None,
            )

    for record in read_jsonl(path):
        if _is_prompt_record(record, fields):
            continue
        report.records += 1
        _problem_key(record, fields)  # validate early, with the record's location
        pending.append(record)
        if len(pending) >= BATCH_SIZE:
            yield from resolve()
            pending = []
    if pending:
        yield from resolve()


def _problem_key(record: RawRecord, fields: OutputFields) -> str:
    if fields.problem_ref is not None:
        ref = record.data.get(fields.problem_ref)
        if ref is None:
            raise InputError(record.location, f'missing problem reference field "{fields.problem_ref}"')
        return str(ref)
    question = record.data.get(fields.question)
    if not isinstance(question, str) or not question.strip():
        raise InputError(record.location, f'missing question field "{fields.question}"')
    return question_fingerprint(question)


def _lookup_problems(
    session: Session, task_id: int, split: str | None, fields: OutputFields, records: list[RawRecord]
) -> dict[str, list[tuple[int, str]]]:
    keys = {_problem_key(r, fields) for r in records}
    column = Problem.source_ref if fields.problem_ref is not None else Problem.content_hash
    query = select(column, Problem.id, Problem.split).where(Problem.task_id == task_id, column.in_(keys))
    if split is not None:
        query = query.where(Problem.split == split)
    found: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for key, problem_id, problem_split in session.execute(query.order_by(Problem.id)):
        found[key].append((problem_id, problem_split))
    if not found and records and split is not None:
        exists = session.execute(
            select(Problem.id).where(Problem.task_id == task_id, Problem.split == split).limit(1)
        ).first()
        if exists is None:
            raise CurationError(f"split {split!r} of this task has no problems")
    return found
