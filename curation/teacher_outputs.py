"""Importing published teacher outputs as a synthesis run, so they are curated like fresh ones.

Files: JSONL (one record per line), or Kojima et al.'s zero-shot-CoT logs (kojima_log.py). Each
record names its problem, by a reference field (the problem's source_ref) or by its question
text, and carries one output or a list of outputs (one generation per element, sample_index in
list order). Other fields are kept in `generation.meta`. A record with no question but a `prompt`
field is the run's prompt (the Program-of-Thoughts files open with their few-shot prompt): it
becomes the run's template text.

Matching a question (on the question fingerprint, within the task and the split if given):
- A question may carry its options as the teacher saw them, verbalised (``... Answer Choices: (A)
  shelf (B) board ...``, Kojima's and Fine-tune-CoT's forms, also after "Which choice is true?"):
  the stem is matched, and of the problems it matches, those with these options.
- The options the teacher saw, from the question or a choices field, are lined up with the
  stored ones, and their order is stored with each generation (`choice_order`), so that a letter
  is scored as the option the teacher saw under it. A multiple-choice record without them is
  taken to have seen the stored order, and the report counts such records.
- Several matching problems that are copies (same gold answer, same choices: MultiArith and
  StrategyQA repeat questions) take the records in turn: the n-th record of that question goes to
  the n-th copy (in id order), the copies' count wrapping around. Matching problems whose golds
  or choices differ are an error naming them, with a hint fit for the options given.
- A reported gold (a `gold` field, Kojima's GT) that disagrees with the stored one is counted and
  reported: the record may answer another version of the problem.

An import that matches nothing is an error: nothing is written. Importing the same file again adds
nothing: the run is keyed by the file's sha256 with the task, teacher and template, and
generations by (run, problem, sample_index).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.answers.choices import choice_order, split_verbalised, stored_label
from curation.answers.match import answers_match
from curation.answers.normalize import AnswerFormatError, normalize_gold
from curation.db.base import utc_now
from curation.db.text import storable
from curation.errors import CurationError, InputError, NotFoundError, SourceLocation
from curation.ingestion.formats import RecordError, parse_choices
from curation.ingestion.readers import RawRecord, read_jsonl
from curation.ingestion.rows import question_fingerprint
from curation.kojima_log import looks_like_kojima_log, read_kojima_log
from curation.models import AnswerType, ModelRole, Problem, RunStatus, SynthesisRun, TemplateStyle
from curation.repositories import models as model_repo
from curation.repositories import problems as problem_repo
from curation.repositories import runs as run_repo
from curation.repositories import templates as template_repo

BATCH_SIZE = 1_000
UNKNOWN_PROMPT = "(prompt not recorded with the imported outputs)"
KOJIMA_PROMPT = "Q: {{ question }}\nA: Let's think step by step."
FORMATS = ("auto", "jsonl", "kojima-log")

Choice = dict[str, str]


@dataclass(frozen=True)
class OutputFields:
    """Which record fields hold what. `choices`: the options as the teacher saw them (any shape
    ingestion reads, or a verbalised string); `gold`: the gold answer the file reports, checked
    against the stored one."""

    question: str = "question"
    output: str = "generated"
    problem_ref: str | None = None
    answer_output: str | None = None
    choices: str | None = None
    gold: str | None = None


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
    onto_copies: int = 0  # records whose question has several stored copies
    choices_assumed: int = 0  # multiple-choice records that did not say which options they saw
    gold_disagreements: int = 0
    gold_disagreement_examples: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Matched:
    location: SourceLocation
    problem_id: int
    outputs: list[str]
    answer_output: str | None
    choice_order: list[str] | None
    meta: dict[str, Any] | None


@dataclass(frozen=True)
class _Candidate:
    problem_id: int
    split: str
    gold: str
    choices: list[Choice] | None


@dataclass(frozen=True)
class _Key:
    """How a record names its problem: lookup keys (a reference, or question fingerprints) and the
    options it saw, if it says."""

    lookups: tuple[str, ...]
    shown: list[Choice] | None


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reader(path: Path, file_format: str) -> Callable[[Path], Iterator[RawRecord]]:
    if file_format not in FORMATS:
        raise CurationError(f"unknown outputs format {file_format!r}; known: {', '.join(FORMATS)}")
    if file_format == "kojima-log" or (
        file_format == "auto" and path.suffix == ".log" and looks_like_kojima_log(path)
    ):
        return read_kojima_log
    return read_jsonl


def _outputs(record: RawRecord, fields: OutputFields) -> list[str]:
    if fields.output not in record.data:
        raise InputError(record.location, f'missing output field "{fields.output}"')
    value = record.data[fields.output]
    outputs = value if isinstance(value, list) else [value]
    if not outputs or not all(isinstance(o, str) for o in outputs):
        raise InputError(record.location, f'"{fields.output}" should be text or a non-empty list of texts')
    return [storable(o) for o in outputs]  # published files are input like any other: no NUL


def _find_prompt(records: Iterator[RawRecord], fields: OutputFields) -> str | None:
    for record in records:
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
    file_format: str = "auto",
) -> ImportReport:
    fields = fields or OutputFields()
    if style is TemplateStyle.reference:
        raise CurationError("reference rationales are imported by `curation references`, not as teacher outputs")
    if style is TemplateStyle.student:
        raise CurationError("student outputs are made by `curation eval`, not imported as teacher outputs")
    if not path.is_file():
        raise InputError(str(path), "no such file")
    read = _reader(path, file_format)
    if read is read_kojima_log and fields.gold is None:
        fields = dataclasses.replace(fields, gold="gold")  # the logs' GT line
    task_row = problem_repo.get_task(session, task)
    if task_row is None:
        raise NotFoundError(f"task {task!r} has no problems yet: ingest it before importing outputs for it")
    teacher_row = model_repo.ensure_model(session, role=ModelRole.teacher, backend=backend, name=teacher)
    default_prompt = KOJIMA_PROMPT if read is read_kojima_log else UNKNOWN_PROMPT
    text = template_text or _find_prompt(read(path), fields) or default_prompt
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
    matcher = _Matcher(session, task_row.id, task_row.answer_type, split, fields, report, skip_unmatched)

    next_sample: dict[int, int] = defaultdict(int)
    for batch in _batches(matcher.matched(read(path))):
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
                        "choice_order": matched.choice_order,
                        "meta": matched.meta,
                    }
                )
                next_sample[matched.problem_id] += 1
        report.generations += len(rows)
        report.new_generations += run_repo.insert_generations(session, rows)

    if report.generations == 0:
        # An empty run looks like a finished one: say what happened instead (nothing is written).
        detail = (
            f"none of its {report.records:,} records matches a stored problem of task {task}"
            + (f" in split {split}" if split else "")
            + (f" (e.g. {report.unmatched_examples[0]})" if report.unmatched_examples else "")
            if report.records
            else "it holds no records"
        )
        raise InputError(str(path), f"nothing to import: {detail}")
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


class _Matcher:
    """Pairs records with their problems, looked up a batch at a time (module docstring)."""

    def __init__(
        self,
        session: Session,
        task_id: int,
        answer_type: AnswerType,
        split: str | None,
        fields: OutputFields,
        report: ImportReport,
        skip_unmatched: bool,
    ) -> None:
        self.session, self.task_id, self.answer_type, self.split = session, task_id, answer_type, split
        self.fields, self.report, self.skip_unmatched = fields, report, skip_unmatched
        self.occurrences: Counter[tuple[int, ...]] = Counter()  # copies -> records sent to them so far

    def matched(self, records: Iterator[RawRecord]) -> Iterator[_Matched]:
        pending: list[tuple[RawRecord, _Key]] = []
        for record in records:
            if _is_prompt_record(record, self.fields):
                continue
            self.report.records += 1
            pending.append((record, self._key(record)))  # validated early, with the record's location
            if len(pending) >= BATCH_SIZE:
                yield from self._resolve(pending)
                pending = []
        if pending:
            yield from self._resolve(pending)

    def _key(self, record: RawRecord) -> _Key:
        fields = self.fields
        shown = self._shown_choices(record)
        if fields.problem_ref is not None:
            ref = record.data.get(fields.problem_ref)
            if ref is None:
                raise InputError(record.location, f'missing problem reference field "{fields.problem_ref}"')
            return _Key((str(ref),), shown)
        question = record.data.get(fields.question)
        if not isinstance(question, str) or not question.strip():
            raise InputError(record.location, f'missing question field "{fields.question}"')
        lookups = [question_fingerprint(question)]
        verbalised = split_verbalised(question) if self.answer_type is AnswerType.multiple_choice else None
        if verbalised is not None:
            stem, options = verbalised
            if stem.strip():
                lookups.append(question_fingerprint(stem))
            shown = shown or options
        return _Key(tuple(dict.fromkeys(lookups)), shown)

    def _shown_choices(self, record: RawRecord) -> list[Choice] | None:
        name = self.fields.choices
        if name is None or record.data.get(name) is None:
            return None
        value = record.data[name]
        if isinstance(value, str):
            verbalised = split_verbalised(value if _has_header(value) else f"Answer Choices: {value}")
            if verbalised is None:
                raise InputError(record.location, f'cannot read the options in "{name}": {value[:80]!r}')
            return verbalised[1]
        try:
            shown = sorted(parse_choices(value), key=lambda c: c["label"])
        except RecordError as error:
            raise InputError(record.location, f'"{name}": {error}') from None
        labels = [c["label"] for c in shown]
        if labels != [chr(ord("A") + i) for i in range(len(labels))]:
            raise InputError(record.location, f'"{name}": options are labelled {", ".join(labels)}, not A, B, C, ...')
        return shown

    def _lookup(self, keys: set[str]) -> dict[str, list[_Candidate]]:
        column = Problem.source_ref if self.fields.problem_ref is not None else Problem.content_hash
        query = select(column, Problem.id, Problem.split, Problem.gold_answer, Problem.choices).where(
            Problem.task_id == self.task_id, column.in_(keys)
        )
        if self.split is not None:
            query = query.where(Problem.split == self.split)
        found: dict[str, list[_Candidate]] = defaultdict(list)
        for key, problem_id, problem_split, gold, choices in self.session.execute(query.order_by(Problem.id)):
            found[key].append(_Candidate(problem_id, problem_split, gold, choices))
        if not found and keys and self.split is not None:
            exists = self.session.execute(
                select(Problem.id).where(Problem.task_id == self.task_id, Problem.split == self.split).limit(1)
            ).first()
            if exists is None:
                raise CurationError(f"split {self.split!r} of this task has no problems")
        return found

    def _resolve(self, pending: list[tuple[RawRecord, _Key]]) -> Iterator[_Matched]:
        lookup = self._lookup({k for _, key in pending for k in key.lookups})
        for record, key in pending:
            candidates = list({c.problem_id: c for k in key.lookups for c in lookup.get(k, [])}.values())
            candidates.sort(key=lambda c: c.problem_id)
            order_of: dict[int, list[str]] = {}
            if key.shown is not None and self.answer_type is AnswerType.multiple_choice:
                for candidate in candidates:
                    order = choice_order(key.shown, candidate.choices or [])
                    if order is not None:
                        order_of[candidate.problem_id] = order
                if candidates and not order_of:
                    raise InputError(
                        record.location,
                        f"the options shown ({_listed(key.shown)}) are not those of the stored problem"
                        f"{'s' if len(candidates) > 1 else ''} with this question "
                        f"({'; '.join(f'#{c.problem_id}: {_listed(c.choices or [])}' for c in candidates[:3])})",
                    )
                candidates = [c for c in candidates if c.problem_id in order_of]
            if not candidates:
                self._unmatched(record)
                continue
            problem = self._choose(record, candidates)
            order = order_of.get(problem.problem_id)
            if order is None and self.answer_type is AnswerType.multiple_choice:
                self.report.choices_assumed += 1
            self._check_gold(record, problem, order)
            fields = self.fields
            used = {fields.question, fields.output, fields.problem_ref, fields.answer_output, fields.choices}
            answer_output = record.data.get(fields.answer_output) if fields.answer_output else None
            yield _Matched(
                location=record.location,
                problem_id=problem.problem_id,
                outputs=_outputs(record, fields),
                answer_output=storable(answer_output) if isinstance(answer_output, str) else None,
                choice_order=order,
                meta={k: v for k, v in record.data.items() if k not in used} or None,
            )

    def _choose(self, record: RawRecord, candidates: list[_Candidate]) -> _Candidate:
        """One problem; of several copies, the n-th for the n-th record naming them."""
        if len(candidates) == 1:
            return candidates[0]
        first = candidates[0]
        if any(c.gold != first.gold or c.choices != first.choices for c in candidates[1:]):
            listed = ", ".join(f"#{c.problem_id} ({c.split}, gold {c.gold})" for c in candidates[:4])
            raise InputError(
                record.location,
                f"the question matches {len(candidates)} stored problems that differ ({listed}); "
                + self._hint(candidates),
            )
        group = tuple(c.problem_id for c in candidates)
        chosen = candidates[self.occurrences[group] % len(candidates)]
        self.occurrences[group] += 1
        self.report.onto_copies += 1
        return chosen

    def _hint(self, candidates: list[_Candidate]) -> str:
        splits = sorted({c.split for c in candidates})
        if self.fields.problem_ref is not None:
            return f"pass --split to say which split the reference means (it names problems in {', '.join(splits)})"
        if self.split is None and len(splits) > 1:
            return (
                f"pass --split to import onto one of the splits they are in ({', '.join(splits)}), "
                "or give each record a problem reference field (--ref-field)"
            )
        return "give each record a problem reference field (the problem's source_ref) and pass --ref-field"

    def _unmatched(self, record: RawRecord) -> None:
        if not self.skip_unmatched:
            raise InputError(
                record.location,
                "no stored problem matches this record"
                + (f" in split {self.split}" if self.split else "")
                + "; ingest the problems first, or pass --skip-unmatched",
            )
        self.report.unmatched += 1
        if len(self.report.unmatched_examples) < 5:
            self.report.unmatched_examples.append(str(record.location))

    def _check_gold(self, record: RawRecord, problem: _Candidate, order: list[str] | None) -> None:
        name = self.fields.gold
        if name is None or record.data.get(name) is None:
            return
        reported = record.data[name]
        labels = [chr(ord("A") + i) for i in range(len(order))] if order else None
        try:
            gold = normalize_gold(reported, self.answer_type, choice_labels=labels)
        except AnswerFormatError:
            gold = None
        if gold is not None and self.answer_type is AnswerType.multiple_choice:
            gold = stored_label(gold, problem.choices or [], order)
        if gold is not None and answers_match(gold, problem.gold, self.answer_type):
            return
        self.report.gold_disagreements += 1
        if len(self.report.gold_disagreement_examples) < 5:
            self.report.gold_disagreement_examples.append(
                f"{record.location}: reports {str(reported)[:40]!r}, "
                f"problem #{problem.problem_id} has {problem.gold!r}"
            )


def _has_header(text: str) -> bool:
    return split_verbalised(text) is not None


def _listed(choices: list[Choice]) -> str:
    text = " ".join(f"({c['label']}) {c['text']}" for c in choices)
    return text if len(text) <= 120 else text[:117] + "..."
