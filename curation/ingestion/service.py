"""Ingesting problems: from files, from the Hugging Face hub, or from the procedural source.

Every path ends in `store_problems`, which writes in batches inside the caller's transaction:
re-ingesting creates nothing, a record that contradicts a stored problem is an error naming both,
and any error leaves the database as it was (the caller's transaction rolls back). A record that
cannot be read or stored is an InputError naming its file and line (or record), whatever went
wrong while converting it.

Each batch is also checked for questions shared between training and evaluation splits (by
`problem.content_hash`, across all tasks): the report counts the train-split problems that repeat
an evaluation question, where either side comes from this ingest. That is a warning, not an error:
the data may be right (PAL's copy of GSM8K test is GSM8K test), but a training snapshot must not
take those problems.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from curation.errors import ConflictError, CurationError, InputError, SourceLocation, shortened
from curation.ingestion.formats import (
    FORMATS,
    ColumnMapping,
    ParsedProblem,
    ParseOptions,
    RecordError,
    parse_mapped,
)
from curation.ingestion.readers import RawRecord
from curation.ingestion.rows import PROBLEM_COLUMNS, GoldAnswerError, ProblemRow, build_row
from curation.ingestion.splits import FtcotSplit, default_purpose, natural_split
from curation.ingestion.tasks import KNOWN_TASKS, TaskSpec, check_task_name, resolve_task
from curation.models import Problem, Split, Task
from curation.models.task import AnswerType, SplitPurpose
from curation.procedural import procedural_problems
from curation.repositories import problems as problem_repo

Progress = Callable[[int], None]
BATCH_SIZE = 2_000


@dataclass
class IngestReport:
    task: str
    sources: list[str] = field(default_factory=list)
    read: int = 0
    inserted: int = 0
    unchanged: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skip_examples: list[str] = field(default_factory=list)
    per_split: Counter[str] = field(default_factory=Counter)
    # Train-split problems (task, split, source_ref) whose question is also an evaluation problem's,
    # one side at least from this ingest; a set, as a pair may be seen from both of its sides.
    eval_overlap: set[tuple[str, str, str]] = field(default_factory=set)
    eval_overlap_examples: list[str] = field(default_factory=list)

    def skip(self, reason: str, location: SourceLocation | str) -> None:
        self.skipped[reason] += 1
        if len(self.skip_examples) < 5:
            self.skip_examples.append(f"{location}: {reason}")

    @property
    def eval_overlap_count(self) -> int:
        return len(self.eval_overlap)

    def overlap(self, train: tuple[str, str, str], evaluation: tuple[str, str, str]) -> None:
        if train in self.eval_overlap:
            return
        self.eval_overlap.add(train)
        if len(self.eval_overlap_examples) < 5:
            self.eval_overlap_examples.append(
                f"{train[0]}/{train[1]} {train[2]!r} has the question of {evaluation[0]}/{evaluation[1]} "
                f"{evaluation[2]!r}"
            )


def _chunks(rows: Iterable[ProblemRow], size: int) -> Iterator[list[ProblemRow]]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, size)):
        yield chunk


def store_problems(
    session: Session,
    spec: TaskSpec,
    rows: Iterable[ProblemRow],
    report: IngestReport,
    *,
    purpose: SplitPurpose | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> IngestReport:
    task = problem_repo.ensure_task(session, spec.name, spec.answer_type, spec.description)
    split_purposes: dict[str, SplitPurpose] = {}
    overlap = _EvalOverlap(session, spec.name, report)
    for batch in _chunks(rows, batch_size):
        for split in {row.split for row in batch} - split_purposes.keys():
            split_purposes[split] = problem_repo.ensure_split(
                session, task, split, purpose or default_purpose(split)
            ).purpose
        inserted = problem_repo.insert_problems(session, PROBLEM_COLUMNS, [row.values(task.id) for row in batch])
        if inserted < len(batch):
            # Some keys were stored already (or repeat within the batch): everything in the batch
            # must now match what is stored, or the input contradicts the database.
            _check_unchanged(session, task.id, spec.name, batch)
        overlap.check(batch, split_purposes)
        report.inserted += inserted
        report.unchanged += len(batch) - inserted
        report.per_split.update(row.split for row in batch)
        if progress is not None:
            progress(len(batch))
    return report


class _EvalOverlap:
    """Finds each train-split problem that shares its question with an eval-split one, where one
    of the two is being ingested (the other anywhere in the database, this ingest included).

    Evaluation sets are small (benchmarks' test splits), training sets may hold millions: so the
    eval questions' fingerprints are read once into memory, and a batch's train rows are checked
    against them without a query; only a batch's eval rows are looked up among stored train
    problems. A pair whose sides come in different batches is found with the later one.
    """

    def __init__(self, session: Session, task_name: str, report: IngestReport) -> None:
        self.session, self.task_name, self.report = session, task_name, report
        self.eval_hashes: set[str] = set(
            session.execute(
                select(Problem.content_hash)
                .join(Split, (Split.task_id == Problem.task_id) & (Split.name == Problem.split))
                .where(Split.purpose == SplitPurpose.eval)
            ).scalars()
        )

    def check(self, batch: list[ProblemRow], split_purposes: Mapping[str, SplitPurpose]) -> None:
        """After the batch is stored, so that a pair within it is found too."""
        # Per split first: the usual ingest is all train or all eval, and then one of the two
        # loops below is skipped (this runs for every batch of every ingest).
        eval_splits = {split for split, purpose in split_purposes.items() if purpose is SplitPurpose.eval}
        eval_rows: dict[str, ProblemRow] = {}
        if eval_splits:
            for row in batch:
                if row.split in eval_splits:
                    eval_rows.setdefault(row.content_hash, row)
            self.eval_hashes.update(eval_rows)
        if self.eval_hashes and len(eval_splits) < len(split_purposes):
            shared: dict[str, list[ProblemRow]] = {}
            for row in batch:
                if row.content_hash in self.eval_hashes and row.split not in eval_splits:
                    shared.setdefault(row.content_hash, []).append(row)
            if shared:  # rare: the query only names the eval side, for the report's examples
                for content_hash, key in _problems_with_hashes(self.session, shared, SplitPurpose.eval):
                    for row in shared[content_hash]:
                        self.report.overlap((self.task_name, row.split, row.source_ref), key)
        if eval_rows:
            for content_hash, key in _problems_with_hashes(self.session, eval_rows, SplitPurpose.train):
                row = eval_rows[content_hash]
                self.report.overlap(key, (self.task_name, row.split, row.source_ref))


def _problems_with_hashes(
    session: Session, hashes: Iterable[str], purpose: SplitPurpose
) -> Iterator[tuple[str, tuple[str, str, str]]]:
    """(content_hash, (task, split, source_ref)) of the stored problems with one of `hashes`, in `purpose` splits."""
    query = (
        select(Problem.content_hash, Task.name, Problem.split, Problem.source_ref)
        .join(Split, (Split.task_id == Problem.task_id) & (Split.name == Problem.split))
        .join(Task, Task.id == Problem.task_id)
        .where(Problem.content_hash.in_(list(hashes)), Split.purpose == purpose)
        .order_by(Problem.id)
    )
    for content_hash, task, split, source_ref in session.execute(query):
        yield content_hash, (task, split, source_ref)


def _check_unchanged(session: Session, task_id: int, task_name: str, rows: list[ProblemRow]) -> None:
    stored = problem_repo.stored_problem_keys(session, task_id, ((r.split, r.source_ref) for r in rows))
    for row in rows:
        problem_id, content_hash, gold = stored[(row.split, row.source_ref)]
        if content_hash != row.content_hash or gold != row.gold_answer:
            what = (
                "question" if content_hash != row.content_hash else f"gold answer ({gold!r}, now {row.gold_answer!r})"
            )
            raise ConflictError(
                f"{row.location}: {task_name}/{row.split} {row.source_ref!r} is stored as problem #{problem_id} "
                f"with a different {what}. Stored problems never change, because rationales and labels refer "
                "to them; ingest the new version under another split or task name."
            )


def _rows_from_records(
    records: Iterable[tuple[RawRecord, str, str | None]],
    spec: TaskSpec,
    parse: Callable[[Mapping[str, Any], ParseOptions], ParsedProblem],
    options: ParseOptions,
    report: IngestReport,
) -> Iterator[ProblemRow]:
    """(record, default source_ref, split or None to skip) -> validated rows.

    Converting a record is pure (no database), so whatever it raises is about that record: an
    unexpected exception becomes an InputError naming the record, never a bare traceback.
    """
    for raw, default_ref, split in records:
        report.read += 1
        location = raw.location
        try:
            parsed = parse(raw.data, options)
            if parsed.source_id is not None and location.record_id is None:
                location = location._replace(record_id=shortened(parsed.source_id))
            if split is None:
                report.skip("not in the split file", location)
                continue
            row = build_row(
                parsed,
                answer_type=spec.answer_type,
                split=split,
                source_ref=parsed.source_id or default_ref,
                location=location,
            )
        except GoldAnswerError as error:
            if not spec.skip_other_answer_types:
                raise
            report.skip(f"answer is not a {spec.answer_type}", f"{location} ({error.message})")
            continue
        except CurationError:
            raise
        except RecordError as error:
            raise InputError(location, str(error)) from None
        except Exception as error:  # a parser's KeyError, TypeError, ...: still this record's fault
            raise InputError(
                location, f"cannot read the record: {type(error).__name__}: {shortened(str(error), 200)}"
            ) from error
        yield row


def _parse_options(spec: TaskSpec, mapping: ColumnMapping | None) -> ParseOptions:
    return ParseOptions(spec.answer_type, spec.shuffle_choices, mapping or ColumnMapping())


def ingest_files(
    session: Session,
    task: str,
    paths: list[Path],
    *,
    format: str | None = None,
    answer_type: AnswerType | None = None,
    split: str | None = None,
    purpose: SplitPurpose | None = None,
    ftcot_split: Path | None = None,
    mapping: ColumnMapping | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest benchmark files into `task`.

    The split of each record comes from `split`, or from the Fine-tune-CoT split file
    `ftcot_split` (indices over the files concatenated in the order given), or else from each
    file's name (train.jsonl -> train). `purpose` overrides the default (train for a split whose
    name has the word train, eval otherwise: see splits.default_purpose).
    """
    if not paths:
        raise CurationError("no input files")
    if split and ftcot_split:
        raise CurationError("give either --split or --ftcot-split, not both")
    if format is None and mapping is not None and task not in KNOWN_TASKS:
        format = "csv" if paths[0].suffix.lower() == ".csv" else "jsonl"
    spec = resolve_task(task, format=format, answer_type=answer_type)
    if spec.format not in FORMATS:
        raise CurationError(f"task {spec.name} is not read from files (format {spec.format})")
    fmt = FORMATS[spec.format]
    parse = parse_mapped if mapping is not None else fmt.parse
    splitter = FtcotSplit(ftcot_split) if ftcot_split else None
    report = IngestReport(task=spec.name, sources=[str(p) for p in paths])

    def records() -> Iterator[tuple[RawRecord, str, str | None]]:
        position = 0
        for path in paths:
            if not path.is_file():
                raise InputError(str(path), "no such file")
            file_split = split or (None if splitter else natural_split(path))
            if splitter is None and file_split is None:
                raise CurationError(
                    f"cannot tell which split {path} holds: pass --split NAME, or --ftcot-split FILE "
                    "to apply Fine-tune-CoT's split"
                )
            stem = path.name.split(".")[0]
            for raw in fmt.read(path):
                record_split = splitter.split_of.get(position) if splitter else file_split
                yield raw, f"{stem}:{raw.index}", record_split
                position += 1
        if splitter is not None:
            splitter.check_covered(position, report.sources)

    rows = _rows_from_records(records(), spec, parse, _parse_options(spec, mapping), report)
    return store_problems(session, spec, rows, report, purpose=purpose, progress=progress)


def _row_source_spec(task: str, format: str | None, answer_type: AnswerType | None) -> TaskSpec:
    """A task read from rows (a dataset, the hub): a new task's rows are mapped JSON-like records."""
    return resolve_task(task, format=format or ("jsonl" if task not in KNOWN_TASKS else None), answer_type=answer_type)


def ingest_dataset(
    session: Session,
    task: str,
    dataset: Iterable[Mapping[str, Any]],
    *,
    source_name: str,
    split: str,
    purpose: SplitPurpose | None = None,
    format: str | None = None,
    answer_type: AnswerType | None = None,
    mapping: ColumnMapping | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest rows of an in-memory or Hugging Face `datasets.Dataset` (anything yielding dicts)."""
    spec = _row_source_spec(task, format, answer_type)
    parse = parse_mapped if mapping is not None or spec.format not in FORMATS else FORMATS[spec.format].parse
    report = IngestReport(task=spec.name, sources=[source_name])

    def records() -> Iterator[tuple[RawRecord, str, str | None]]:
        for i, row in enumerate(dataset):
            location = SourceLocation(source_name, record=i)
            if not isinstance(row, Mapping):
                raise InputError(location, f"expected a record of named fields, found {type(row).__name__}")
            yield RawRecord(location, i, dict(row)), f"{split}:{i}", split

    rows = _rows_from_records(records(), spec, parse, _parse_options(spec, mapping), report)
    return store_problems(session, spec, rows, report, purpose=purpose, progress=progress)


def ingest_hub(
    session: Session,
    task: str,
    *,
    dataset: str | None = None,
    config: str | None = None,
    hf_split: str = "train",
    split: str | None = None,
    revision: str | None = None,
    purpose: SplitPurpose | None = None,
    format: str | None = None,
    answer_type: AnswerType | None = None,
    mapping: ColumnMapping | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Ingest a split of a Hugging Face hub dataset (needs network access to the hub)."""
    spec = _row_source_spec(task, format, answer_type)
    if dataset is None:
        if spec.hub is None:
            raise CurationError(f"no default hub dataset for {spec.name}: pass --dataset NAME and --map columns")
        dataset, config = spec.hub.dataset, config or spec.hub.config
    import datasets  # heavy; only this command needs it

    try:
        rows = datasets.load_dataset(dataset, config, split=hf_split, revision=revision)
    except Exception as error:  # the hub raises many types: offline, missing, gated, bad split
        raise CurationError(
            f"could not load {dataset} ({config or 'default'}, {hf_split}) from the hub: {error}"
        ) from None
    return ingest_dataset(
        session,
        spec.name,
        rows,
        source_name=f"hf://{dataset}/{config or 'default'}/{hf_split}",
        split=split or hf_split,
        purpose=purpose,
        format=format,
        answer_type=answer_type,
        mapping=mapping,
        progress=progress,
    )


def procedural_rows(count: int, *, seed: int, offset: int, split: str) -> Iterator[ProblemRow]:
    source = f"procedural(seed={seed})"
    for index, parsed in enumerate(procedural_problems(count, seed=seed, offset=offset), start=offset):
        assert parsed.source_id is not None
        yield build_row(
            parsed,
            answer_type=AnswerType.number,
            split=split,
            source_ref=parsed.source_id,
            location=SourceLocation(source, record=index),
        )


def ingest_procedural(
    session: Session,
    *,
    count: int,
    seed: int = 0,
    offset: int = 0,
    split: str = "train",
    purpose: SplitPurpose | None = None,
    task: str = "procedural",
    progress: Progress | None = None,
) -> IngestReport:
    if count < 0 or offset < 0:
        raise CurationError("count and offset must not be negative")
    check_task_name(task)
    spec = dataclasses.replace(KNOWN_TASKS["procedural"], name=task)
    report = IngestReport(task=task, sources=[f"procedural(seed={seed}, offset={offset}, count={count})"])
    rows = procedural_rows(count, seed=seed, offset=offset, split=split)

    def counted() -> Iterator[ProblemRow]:
        for row in rows:
            report.read += 1
            yield row

    return store_problems(session, spec, counted(), report, purpose=purpose, progress=progress)
